/** Readable texts for API errors, in the console's language. */
import { i18n } from '@/i18n'
import { asApiError } from '@/api/errors'

const KNOWN = new Set(['not_found', 'already_exists', 'conflict', 'invalid', 'too_large',
  'unauthorized', 'forbidden', 'risk_not_accepted', 'engine_unavailable', 'engine_error',
  'image_pull_failed', 'store_error', 'storage_full', 'network', 'rate_limited', 'error'])

/** A short title for the kind of error. */
export function errorTitle(err: unknown): string {
  const e = asApiError(err)
  const t = i18n.global.t
  if (KNOWN.has(e.code)) return t(`errors.${e.code}`)
  if (e.status === 429) return t('errors.rate_limited')
  if (e.status >= 500) return t('errors.server')
  return t('errors.error')
}

/** The full readable message: the server's own words, or a translated fallback. */
export function errorText(err: unknown): string {
  const e = asApiError(err)
  const t = i18n.global.t
  if (e.code === 'network') return t('errors.networkHelp')
  if (e.message) return e.message
  if (e.status >= 500) return t('errors.serverHelp', { status: e.status })
  return t('errors.unknownHelp', { status: e.status })
}

/** Title and message in one line, for toasts. */
export function errorLine(err: unknown): string {
  return `${errorTitle(err)}: ${errorText(err)}`
}
