import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { i18n } from '@/i18n'
import en from '@/i18n/locales/en.json'
import zh from '@/i18n/locales/zh-CN.json'
import { domainError, operationError } from '@/utils/domain-error'
import type { Schemas } from '@/api/client'

type Domain = Schemas['DomainRead']
type Detail = Schemas['DomainErrorDetail']

const CA = 'https://acme-v02.api.letsencrypt.org/directory'
const NO_RECORD: Schemas['DnsCheck'] = {
  domain: 'shop.example.org', ok: false, cnames: [], addresses: [], box_addresses: ['203.0.113.7'],
  expected: [{ type: 'CNAME', name: 'shop.example.org', value: 'web.box.example.com' }],
  record_name: 'shop.example.org', problem_code: 'no_record', problem: 'shop.example.org has no DNS record',
  fix: 'create shop.example.org. CNAME web.box.example.com. at the DNS provider',
}
const CAA: Schemas['DnsCheck'] = {
  ...NO_RECORD, problem_code: 'caa_forbids', ca: 'letsencrypt.org', addresses: ['203.0.113.7'],
  problem: 'a CAA record of shop.example.org forbids the certificate authority (letsencrypt.org) from issuing for it',
  fix: 'add a CAA record: shop.example.org. CAA 0 issue "letsencrypt.org"',
}

function domain(code: Domain['error_code'], detail: Detail | null = null, error = 'the server says so'): Domain {
  return {
    name: 'shop.example.org', instance: 'web', kind: 'custom', state: 'failed', url: 'https://shop.example.org',
    tls: 'acme', protected: false, error, error_code: code, error_detail: detail,
  }
}

const CASES: Record<string, Domain> = {
  rejected_identifier: domain('rejected_identifier', { detail: 'forbidden by policy' }),
  caa: domain('caa'),
  rate_limited: domain('rate_limited', { detail: 'too many failed authorizations recently' }),
  port80_unreachable: domain('port80_unreachable', { detail: '203.0.113.7:80: connection refused' }),
  port80_elsewhere: domain('port80_elsewhere'),
  ca_dns: domain('ca_dns', { detail: 'NXDOMAIN looking up A' }),
  ca_unreachable: domain('ca_unreachable', { ca: CA, detail: '127.0.0.1:443: i/o timeout' }),
  ca_untrusted: domain('ca_untrusted', { ca: CA }),
  ca_refused: domain('ca_refused', { problem: 'badCSR', detail: 'bad key' }),
  not_obtained: domain('not_obtained', { detail: 'obtaining certificate: something new' }),
  https_timeout: domain('https_timeout', { seconds: 120, detail: 'the TLS handshake did not finish' }),
  dns_timeout: domain('dns_timeout', { seconds: 120, record: 'shop.example.org. CNAME web.box.example.com.', dns: NO_RECORD }),
  dns_refused: domain('dns_refused', { dns: CAA }),
  dangling: domain('dangling', { dns: NO_RECORD }),
  interrupted: domain('interrupted'),
  app_unavailable: domain('app_unavailable', { status: 'HTTP/1.1 503 Service Unavailable' }),
  app_not_answering: domain('app_not_answering', { status: 'HTTP/1.1 502 Bad Gateway' }),
  instance_removed: domain('instance_removed'),
  app_stopped: domain('app_stopped'),
  app_no_web: domain('app_no_web'),
  app_no_port: domain('app_no_port'),
  gateway_down: domain('gateway_down', { detail: 'port 80 is taken by nginx (pid 7)' }),
  gateway_stopped: domain('gateway_stopped'),
  gateway_off: domain('gateway_off'),
}

/** The server's English (proxy/acme_errors.py, flows.py, service.py) without Caddy's own text in brackets;
 * gateway_down says what the server's bare reason leaves unsaid. */
const ENGLISH: Record<string, string> = {
  rejected_identifier: 'the certificate authority refuses to issue a certificate for shop.example.org: its policy '
    + 'forbids this name (forbidden by policy); use another name',
  caa: 'a CAA record of shop.example.org (or of a parent domain) forbids the certificate authority: add a CAA record '
    + 'allowing it, or remove the CAA records',
  rate_limited: "the certificate authority's rate limit is reached for shop.example.org (too many failed authorizations "
    + "recently): wait (Let's Encrypt allows 5 failed validations per name per hour) and add the domain again",
  port80_unreachable: 'the certificate authority could not connect to port 80 of this box at shop.example.org '
    + '(203.0.113.7:80: connection refused): open port 80 in the firewall and forward it to this box on the router; '
    + 'HTTP-01 needs it (or use a DNS provider and tls dns01)',
  port80_elsewhere: "the certificate authority reached shop.example.org on port 80, but not this box's gateway (the "
    + 'answer did not match): make sure port 80 is forwarded to this box and not to another server',
  ca_dns: 'the certificate authority could not look up shop.example.org (NXDOMAIN looking up A): check its DNS record '
    + '(stackhub domain check shop.example.org)',
  ca_unreachable: `the certificate authority ${CA} cannot be reached from this box (127.0.0.1:443: i/o timeout): check `
    + 'STACKHUB_ACME_CA and that the box can open outgoing HTTPS connections',
  ca_untrusted: `the certificate authority ${CA} cannot be reached from this box (its TLS certificate is not trusted: `
    + 'set STACKHUB_ACME_CA_ROOT): check STACKHUB_ACME_CA and that the box can open outgoing HTTPS connections',
  ca_refused: 'the certificate authority refused the certificate for shop.example.org: badCSR (bad key)',
  not_obtained: 'the certificate for shop.example.org could not be obtained (obtaining certificate: something new)',
  https_timeout: 'shop.example.org did not serve over HTTPS within 120 s (the TLS handshake did not finish); check that port 80 of this box is reachable '
    + 'from the internet (the CA connects to it)',
  dns_timeout: 'StackHub created shop.example.org. CNAME web.box.example.com. at the DNS provider, but '
    + 'shop.example.org did not lead to this box within 120 s: shop.example.org has no DNS record',
  dns_refused: 'a CAA record of shop.example.org forbids the certificate authority (letsencrypt.org) from issuing for '
    + 'it: add a CAA record: shop.example.org. CAA 0 issue "letsencrypt.org"',
  dangling: 'DNS no longer reaches this box: shop.example.org has no DNS record: create shop.example.org. CNAME '
    + 'web.box.example.com. at the DNS provider',
  interrupted: 'StackHub stopped while binding this domain; run `stackhub domain add` again',
  app_unavailable: "the certificate is in place, but the gateway shows its 'app unavailable' page (HTTP/1.1 503 "
    + 'Service Unavailable): web is stopped or has no web port; start it (stackhub app start web)',
  app_not_answering: "the certificate is in place, but web does not answer: the gateway shows its 'App not answering' "
    + 'page (HTTP/1.1 502 Bad Gateway); check the app (stackhub app logs web)',
  instance_removed: "instance 'web' was removed; remove this domain or its DNS record",
  app_stopped: 'The app web is stopped. Start it in StackHub to use it here.',
  app_no_web: 'The app web has no web page.',
  app_no_port: 'The app web publishes no port for its web page.',
  gateway_down: 'the gateway cannot run: port 80 is taken by nginx (pid 7)',
  gateway_stopped: 'the gateway is not running',
  gateway_off: 'the gateway is not running (turned off until a domain exists)',
}

const CHINESE: Record<string, string> = {
  rejected_identifier: '证书颁发机构拒绝为 shop.example.org 签发证书：其策略禁止使用这个名称（forbidden by policy）；请换一个名称',
  caa: 'shop.example.org（或其上级域名）的 CAA 记录不允许该证书颁发机构签发证书：请添加允许它的 CAA 记录，或删除这些 CAA 记录',
  rate_limited: "shop.example.org 已达到证书颁发机构的频率限制（too many failed authorizations recently）：请等待一段时间（Let's "
    + 'Encrypt 对每个名称每小时允许 5 次验证失败），然后重新添加该域名',
  port80_unreachable: '证书颁发机构无法通过 shop.example.org 连接到本机的 80 端口（203.0.113.7:80: connection refused）：请在'
    + '防火墙中开放 80 端口，并在路由器上将其转发到本机；HTTP-01 验证需要它（或使用 DNS 服务商和 tls dns01）',
  port80_elsewhere: '证书颁发机构通过 80 端口访问到了 shop.example.org，但不是本机的网关（应答不匹配）：请确认 80 端口转发到了本机，'
    + '而不是另一台服务器',
  ca_dns: '证书颁发机构无法解析 shop.example.org（NXDOMAIN looking up A）：请检查它的 DNS 记录（stackhub domain check '
    + 'shop.example.org）',
  ca_unreachable: `本机无法连接证书颁发机构 ${CA}（127.0.0.1:443: i/o timeout）：请检查 STACKHUB_ACME_CA，并确认本机可以发起`
    + '对外的 HTTPS 连接',
  ca_untrusted: `本机无法连接证书颁发机构 ${CA}（它的 TLS 证书不受信任：请设置 STACKHUB_ACME_CA_ROOT）：请检查 STACKHUB_ACME_CA，`
    + '并确认本机可以发起对外的 HTTPS 连接',
  ca_refused: '证书颁发机构拒绝为 shop.example.org 签发证书：badCSR（bad key）',
  not_obtained: '无法获取 shop.example.org 的证书（obtaining certificate: something new）',
  https_timeout: 'shop.example.org 未能在 120 秒内通过 HTTPS 提供服务（the TLS handshake did not finish）；请检查本机的 80 端口能否从互联网访问（证书颁发机构会连接它）',
  dns_timeout: 'StackHub 已在 DNS 服务商处创建 shop.example.org. CNAME web.box.example.com.，但 shop.example.org 在 120 秒内'
    + '仍未指向本机：shop.example.org 没有 DNS 记录',
  dns_refused: 'shop.example.org 的 CAA 记录不允许证书颁发机构（letsencrypt.org）为其签发证书：请添加 CAA 记录：'
    + 'shop.example.org. CAA 0 issue "letsencrypt.org"',
  dangling: 'DNS 已不再指向本机：shop.example.org 没有 DNS 记录：请在 DNS 服务商处创建 shop.example.org. CNAME '
    + 'web.box.example.com.',
  interrupted: 'StackHub 在绑定此域名时停止了；请重新运行 `stackhub domain add`',
  app_unavailable: '证书已就绪，但网关显示的是“应用不可用”页面（HTTP/1.1 503 Service Unavailable）：web 已停止或没有网页端口；'
    + '请启动它（stackhub app start web）',
  app_not_answering: '证书已就绪，但 web 没有响应：网关显示的是“应用没有响应”页面（HTTP/1.1 502 Bad Gateway）；请检查该应用'
    + '（stackhub app logs web）',
  instance_removed: '应用 web 已被删除；请删除此域名或它的 DNS 记录',
  app_stopped: '应用 web 已停止。请在 StackHub 中启动它，然后再从这里访问。',
  app_no_web: '应用 web 没有网页界面。',
  app_no_port: '应用 web 没有为它的网页界面发布端口。',
  gateway_down: '网关无法运行：port 80 is taken by nginx (pid 7)',
  gateway_stopped: '网关未运行',
  gateway_off: '网关未运行（在添加第一个域名之前处于关闭状态）',
}

describe('domainError', () => {
  beforeAll(() => i18n.global.setLocaleMessage('zh-CN', zh))
  afterEach(() => { i18n.global.locale.value = 'en' })

  it('has a case for every code the server sends and every code the locales word', () => {
    const codes = Object.keys(CASES).sort()
    expect(Object.keys(en.domainError.text).sort()).toEqual(codes)
    expect(Object.keys(zh.domainError.text).sort()).toEqual(codes)
    expect(Object.keys(ENGLISH).sort()).toEqual(codes)
    expect(Object.keys(CHINESE).sort()).toEqual(codes)
  })

  it('words every code in English', () => {
    i18n.global.locale.value = 'en'
    for (const [code, d] of Object.entries(CASES)) expect(domainError(d), code).toBe(ENGLISH[code])
  })

  it('words every code in Chinese, with the domain and values verbatim', () => {
    i18n.global.locale.value = 'zh-CN'
    for (const [code, d] of Object.entries(CASES)) expect(domainError(d), code).toBe(CHINESE[code])
  })

  it('leaves out the connection when the CA could not be reached for another reason', () => {
    i18n.global.locale.value = 'zh-CN'
    expect(domainError(domain('ca_unreachable', { ca: CA }))).toBe(
      `本机无法连接证书颁发机构 ${CA}：请检查 STACKHUB_ACME_CA，并确认本机可以发起对外的 HTTPS 连接`)
    i18n.global.locale.value = 'en'
    expect(domainError(domain('ca_refused', { problem: 'badCSR' }))).toBe(
      'the certificate authority refused the certificate for shop.example.org: badCSR')
  })

  it("falls back to the server's English for no code, an unknown code or missing values", () => {
    i18n.global.locale.value = 'zh-CN'
    expect(domainError(domain(null, null, 'an error from before the codes'))).toBe('an error from before the codes')
    expect(domainError(domain('from_the_future' as Domain['error_code']))).toBe('the server says so')
    expect(domainError(domain('dangling'))).toBe('the server says so')
    expect(domainError(domain('rate_limited', { ca: CA }))).toBe('the server says so')
    expect(domainError(domain(null, null, null as unknown as string))).toBe('')
    expect(domainError({ ...domain('caa'), error: null })).toBe('')
    expect(domainError(null)).toBe('')
  })
})

describe('operationError', () => {
  beforeAll(() => i18n.global.setLocaleMessage('zh-CN', zh))
  afterEach(() => { i18n.global.locale.value = 'en' })

  it('words a failed operation by the domain row that stored the same error', () => {
    i18n.global.locale.value = 'zh-CN'
    const row = CASES.interrupted
    expect(operationError(row.error ?? undefined, row)).toBe(CHINESE.interrupted)
    expect(operationError('something else went wrong', row)).toBe('something else went wrong')
    expect(operationError('the record could not be made', undefined)).toBe('the record could not be made')
    expect(operationError(undefined, row)).toBe('')
  })
})
