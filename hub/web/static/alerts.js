// The alerts inbox, live: new, escalated, acknowledged and withdrawn alerts arrive over the
// hub's server-sent-event stream and the table updates in place, most urgent then newest first.
// Acknowledging posts the same form the page works with without JavaScript.
(function () {
  'use strict'
  var table = document.querySelector('[data-alerts]')
  if (!table || !window.EventSource || !window.fetch) return
  var body = table.querySelector('[data-alert-body]')
  var template = document.getElementById('alert-row-template')
  var status = document.querySelector('[data-live-status]')
  var empty = document.querySelector('[data-alert-empty]')
  var count = document.querySelector('[data-alert-count]')
  var rank = { critical: 0, high: 1, medium: 2, low: 3 }
  var tags = { critical: 'govuk-tag--red', high: 'govuk-tag--orange', medium: 'govuk-tag--yellow', low: 'govuk-tag--grey' }
  var opened = Date.now() - 5000
  var when = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23'
  })

  function say (text) { if (status) status.textContent = text }
  function words (text) { text = String(text || '').replace(/_/g, ' '); return text.charAt(0).toUpperCase() + text.slice(1) }
  function field (row, name) { return row.querySelector('[data-field="' + name + '"]') }

  function refresh () {
    var rows = Array.prototype.slice.call(body.querySelectorAll('[data-alert-row]'))
    rows.sort(function (a, b) {
      var r = (rank[a.dataset.severity] ?? 9) - (rank[b.dataset.severity] ?? 9)
      return r !== 0 ? r : Date.parse(b.dataset.raised) - Date.parse(a.dataset.raised)
    })
    rows.forEach(function (row) { body.appendChild(row) })
    if (count) count.textContent = String(rows.length)
    if (empty) empty.hidden = rows.length > 0
  }

  function fill (row, alert) {
    row.id = 'alert-' + alert.alert_id
    row.dataset.severity = alert.severity
    row.dataset.raised = alert.raised_at
    var sev = field(row, 'severity')
    sev.className = 'govuk-tag ' + (tags[alert.severity] || 'govuk-tag--grey')
    sev.textContent = words(alert.severity)
    field(row, 'escalated').hidden = !(alert.status === 'escalated' || alert.escalation_step > 0)
    field(row, 'reason').textContent = alert.reason
    field(row, 'child').href = '/children/' + encodeURIComponent(alert.child_id)
    field(row, 'child-id').textContent = ' ' + alert.child_id
    field(row, 'raised').textContent = when.format(new Date(alert.raised_at))
    field(row, 'due').textContent = when.format(new Date(alert.due_at))
    var form = row.querySelector('[data-acknowledge]')
    form.action = '/alerts/' + encodeURIComponent(alert.alert_id) + '/acknowledge'
    form.querySelector('.govuk-visually-hidden').textContent = ' alert: ' + alert.reason
    bind(form)
  }

  function upsert (alert, fresh) {
    var row = document.getElementById('alert-' + alert.alert_id)
    var isNew = !row
    if (isNew) row = template.content.firstElementChild.cloneNode(true)
    fill(row, alert)
    if (isNew) body.appendChild(row)
    if (fresh) {
      row.classList.add('hub-alert--new')
      say((isNew ? 'New alert: ' : 'Alert escalated: ') + alert.reason)
    }
    refresh()
  }

  function remove (alertId, message) {
    var row = document.getElementById('alert-' + alertId)
    if (!row) return
    row.remove()
    refresh()
    if (message) say(message)
  }

  function bind (form) {
    if (form.dataset.bound) return
    form.dataset.bound = '1'
    form.addEventListener('submit', function (event) {
      event.preventDefault()
      var id = decodeURIComponent(form.action.split('/alerts/')[1].split('/')[0])
      fetch(form.action, {
        method: 'POST',
        headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(new FormData(form)).toString(),
        credentials: 'same-origin'
      }).then(function (response) {
        if (!response.ok) throw new Error('acknowledge failed')
        remove(id, 'Alert acknowledged. Its escalation has stopped.')
      }).catch(function () { form.submit() })
    })
  }

  Array.prototype.forEach.call(document.querySelectorAll('[data-acknowledge]'), bind)

  var stream = new EventSource('/api/v1/alerts/stream')
  function handle (kind) {
    return function (event) {
      var data = JSON.parse(event.data)
      var fresh = Date.parse(data.at) >= opened
      if (kind === 'raised' || kind === 'escalated') upsert(data.alert, fresh)
      else remove(data.alert.alert_id, fresh ? (kind === 'withdrawn' ? 'An alert was withdrawn.' : 'An alert was acknowledged.') : '')
    }
  }
  ;['raised', 'escalated', 'acknowledged', 'withdrawn'].forEach(function (kind) {
    stream.addEventListener(kind, handle(kind))
  })
  stream.addEventListener('open', function () { table.dataset.live = 'open' })
})()
