/** Readable texts for API errors, in the console's language.
 *
 * The server sends a stable code (and for some errors a `reason` in the details, with values
 * such as `retry_after`); the console translates those. The server's own English message is
 * shown as is in English, and under the translated text in other languages.
 */
import { i18n } from '@/i18n'
import { asApiError, type ApiError } from '@/api/errors'

const KNOWN = new Set(['not_found', 'already_exists', 'conflict', 'invalid', 'too_large',
  'unauthorized', 'forbidden', 'risk_not_accepted', 'engine_unavailable', 'engine_error',
  'image_pull_failed', 'store_error', 'storage_full', 'network', 'rate_limited', 'gateway_unavailable',
  'repository_error', 'certificate_failed', 'error'])

function reasonOf(e: ApiError): string | null {
  const reason = e.details?.reason
  return typeof reason === 'string' && i18n.global.te(`errors.reasons.${reason}.title`, 'en') ? reason : null
}

function english(): boolean {
  return String(i18n.global.locale.value ?? 'en').startsWith('en')
}

/** A short title saying what failed. */
export function errorTitle(err: unknown): string {
  const e = asApiError(err)
  const t = i18n.global.t
  const reason = reasonOf(e)
  if (reason) return t(`errors.reasons.${reason}.title`)
  if (KNOWN.has(e.code)) return t(`errors.${e.code}`)
  if (e.status === 429) return t('errors.rate_limited')
  if (e.status >= 500) return t('errors.server')
  return t('errors.error')
}

/** The readable message: translated by reason or code; the server's words kept in English. */
export function errorText(err: unknown): string {
  const e = asApiError(err)
  const t = i18n.global.t
  if (e.code === 'network') return t('errors.networkHelp')
  const reason = reasonOf(e)
  if (reason) return t(`errors.reasons.${reason}.text`, { ...e.details })
  if (e.code === 'rate_limited') {
    return t('errors.messages.rate_limited', { seconds: Number(e.details?.retry_after ?? 0) || 1 })
  }
  if (e.message && english()) return e.message
  if (KNOWN.has(e.code) && e.code !== 'error') {
    const text = t(`errors.messages.${e.code}`)
    return e.message ? `${text}\n${t('errors.serverSaid', { message: e.message })}` : text
  }
  if (e.message) return e.message
  if (e.status >= 500) return t('errors.serverHelp', { status: e.status })
  return t('errors.unknownHelp', { status: e.status })
}

/** Title and message in one line, for toasts. */
export function errorLine(err: unknown): string {
  return `${errorTitle(err)}: ${errorText(err).split('\n')[0]}`
}
