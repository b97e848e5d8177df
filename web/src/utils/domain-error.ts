/** A domain's error in the console's language, from its code and values (the server's English otherwise). */
import { i18n } from '@/i18n'
import type { Schemas } from '@/api/client'
import { dnsProblem, dnsProblemLine } from '@/utils/dns-problem'

type Domain = Schemas['DomainRead']
type Code = NonNullable<Domain['error_code']>
type Detail = Schemas['DomainErrorDetail']

/** The values each code's sentence cannot do without (an older server may send fewer). */
const NEEDS: Partial<Record<Code, (keyof Detail)[]>> = {
  rejected_identifier: ['detail'],
  rate_limited: ['detail'],
  port80_unreachable: ['detail'],
  ca_dns: ['detail'],
  ca_unreachable: ['ca'],
  ca_untrusted: ['ca'],
  ca_refused: ['problem'],
  https_timeout: ['seconds'],
  dns_timeout: ['seconds', 'dns'],
  dns_refused: ['dns'],
  dangling: ['dns'],
  app_unavailable: ['status'],
  app_not_answering: ['status'],
  gateway_down: ['detail'],
}

function values(domain: Domain, detail: Detail): Record<string, string> {
  const t = i18n.global.t
  return {
    name: domain.name,
    instance: domain.instance,
    detail: detail.detail ?? '',
    why: detail.detail ? t('domainError.paren', { text: detail.detail }) : '',
    ca: detail.ca ?? '',
    problem: detail.problem ?? '',
    seconds: detail.seconds === null || detail.seconds === undefined ? '' : String(detail.seconds),
    record: detail.record ?? t('domainError.theRecord'),
    status: detail.status ?? '',
    // a timeout says what DNS showed last; a refusal and a dangling domain say the fix too
    dns: domain.error_code === 'dns_timeout' ? dnsProblem(detail.dns)?.problem ?? '' : dnsProblemLine(detail.dns),
  }
}

/** Whether this console words the domain's code itself, with the values it needs. */
function known(domain: Domain): domain is Domain & { error_code: Code } {
  const code = domain.error_code
  if (!code || !i18n.global.te(`domainError.text.${code}`, 'en')) return false
  return (NEEDS[code] ?? []).every((key) => domain.error_detail?.[key] !== null && domain.error_detail?.[key] !== undefined)
}

/** The domain's error in the current language; the server's English for a code this console does not know. */
export function domainError(domain: Domain | null | undefined): string {
  if (!domain?.error) return ''
  if (!known(domain)) return domain.error
  return i18n.global.t(`domainError.text.${domain.error_code}`, values(domain, domain.error_detail ?? {}))
}

/** A failed domain operation's error in the current language: the domain's stored error says
 * the same in words of its code (the operation's own error is the server's English). */
export function operationError(error: string | undefined, domain: Domain | null | undefined): string {
  if (!error) return ''
  return domain && domain.error === error ? domainError(domain) : error
}
