// Checks the rule pack as it is typed: half a second after the last key press it asks the
// hub's /api/v1/rules/validate and says, in the live region under the editor, what is wrong.
(function () {
  'use strict'
  var text = document.querySelector('[data-rules-text]')
  var out = document.querySelector('[data-rules-check]')
  if (!text || !out || !window.fetch) return
  var timer = null
  var asked = 0

  function check () {
    var mine = ++asked
    out.textContent = 'Checking…'
    fetch('/api/v1/rules/validate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify({ text: text.value, filename: 'rules.yaml' })
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status))
      return response.json()
    }).then(function (result) {
      if (mine !== asked) return
      out.dataset.valid = result.valid ? 'true' : 'false'
      if (result.valid) {
        out.textContent = 'No problems found.'
        return
      }
      out.textContent = result.problems.length + (result.problems.length === 1 ? ' problem: ' : ' problems: ') +
        result.problems.map(function (p) {
          return (p.line ? 'line ' + p.line + ', ' : '') + p.location + ': ' + p.message
        }).join('; ')
    }).catch(function () {
      if (mine === asked) out.textContent = 'Could not check the rules just now.'
    })
  }

  text.addEventListener('input', function () {
    clearTimeout(timer)
    timer = setTimeout(check, 500)
  })
})()
