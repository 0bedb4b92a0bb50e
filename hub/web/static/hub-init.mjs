// Starts GOV.UK Frontend's components (skip link focus, navigation toggle, error summary...).
import { initAll } from '/static/govuk/govuk-frontend.min.js'

initAll()
