/** A DNS check's problem and fix in the console's language, from its code and values. */
import { i18n } from '@/i18n'
import type { Schemas } from '@/api/client'

type Check = Schemas['DnsCheck']

/** The words of a failed check; null when the check is fine (or says nothing). */
export interface DnsProblemText {
  problem: string
  fix: string
}

/** A record in zone-file form, as the server writes it ("x.example.org. CNAME web.box.example.com."). */
export function recordText(record: Schemas['DnsRecord']): string {
  return `${record.name}. ${record.type} ${record.value}${record.type === 'CNAME' ? '.' : ''}`
}

function records(check: Check): string {
  const t = i18n.global.t
  const texts = check.expected.map(recordText)
  return texts.length ? texts.join(` ${t('dnsProblem.or')} `) : t('dnsProblem.anyRecord')
}

function values(check: Check): Record<string, string> {
  const t = i18n.global.t
  const name = check.record_name ?? check.domain
  const stray = check.addresses.filter((a) => !check.box_addresses.includes(a))
  return {
    name,
    error: check.lookup_error ?? '',
    target: check.cnames[0] ?? '',
    addresses: (stray.length ? stray : check.addresses).join(', ') || t('dnsProblem.noAddress'),
    box: check.box_addresses.join(', ') || t('dnsProblem.addressUnknown'),
    ca: check.ca ?? '',
    records: records(check),
    record: `${check.domain}. CAA 0 issue "${check.ca ?? ''}"`,
  }
}

/** Whether this console words the check's code itself (an older or newer server may send none or another). */
function known(check: Check): boolean {
  return !!check.problem_code && i18n.global.te(`dnsProblem.problem.${check.problem_code}`, 'en')
}

/** Problem and fix in the current language; the server's English text for a code this console does not know. */
export function dnsProblem(check: Check | null | undefined): DnsProblemText | null {
  if (!check || check.ok) return null
  if (!known(check)) {
    if (!check.problem && !check.fix) return null
    return { problem: check.problem ?? '', fix: check.fix ?? '' }
  }
  const t = i18n.global.t
  const code = check.problem_code
  const args = values(check)
  return { problem: t(`dnsProblem.problem.${code}`, args), fix: t(`dnsProblem.fix.${code}`, args) }
}

/** "problem: fix" in one line, as the alerts show it. */
export function dnsProblemLine(check: Check | null | undefined): string {
  const text = dnsProblem(check)
  if (!text) return ''
  if (!text.fix) return text.problem
  return check && known(check) ? i18n.global.t('dnsProblem.line', { ...text }) : `${text.problem}: ${text.fix}`
}
