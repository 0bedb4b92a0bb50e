// Marks the page as having JavaScript, as GOV.UK Frontend expects (kept out of the page so the
// content security policy can forbid inline scripts).
document.body.className +=
  ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');
