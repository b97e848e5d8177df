import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { i18n } from '@/i18n'
import zh from '@/i18n/locales/zh-CN.json'
import { dnsProblem, dnsProblemLine, recordText } from '@/utils/dns-problem'
import type { Schemas } from '@/api/client'

type Check = Schemas['DnsCheck']

const CNAME = { type: 'CNAME', name: 'x.example.org', value: 'web.box.example.com' } as const
const A = { type: 'A', name: 'x.example.org', value: '203.0.113.7' } as const

function check(extra: Partial<Check>): Check {
  return {
    domain: 'x.example.org', ok: false, cnames: [], addresses: [], box_addresses: ['203.0.113.7'],
    expected: [CNAME, A], record_name: 'x.example.org', ...extra,
  }
}

const CASES: Record<string, Check> = {
  lookup_failed: check({ problem_code: 'lookup_failed', lookup_error: 'the DNS lookup of x.example.org timed out',
    problem: 'the DNS lookup of x.example.org timed out; StackHub could not check x.example.org',
    fix: "check the domain's DNS servers, then try again" }),
  no_record: check({ problem_code: 'no_record', problem: 'x.example.org has no DNS record' }),
  cname_elsewhere: check({ problem_code: 'cname_elsewhere', cnames: ['other.host.net'], addresses: ['10.1.1.1'] }),
  points_elsewhere: check({ problem_code: 'points_elsewhere', addresses: ['203.0.113.7', '10.0.0.9'] }),
  caa_forbids: check({ problem_code: 'caa_forbids', addresses: ['203.0.113.7'], ca: 'letsencrypt.org' }),
}

const RECORDS = 'x.example.org. CNAME web.box.example.com. or x.example.org. A 203.0.113.7'
const ENGLISH: Record<string, [string, string]> = {
  lookup_failed: ['StackHub could not check x.example.org: the DNS lookup of x.example.org timed out',
    "check the domain's DNS servers, then try again"],
  no_record: ['x.example.org has no DNS record', `create ${RECORDS} at the DNS provider`],
  cname_elsewhere: ['x.example.org is a CNAME to other.host.net, which does not lead to this box (10.1.1.1)',
    `change the record at the DNS provider to ${RECORDS}`],
  points_elsewhere: ['x.example.org points at 10.0.0.9, not at this box (203.0.113.7)',
    `change the record at the DNS provider to ${RECORDS}`],
  caa_forbids: ['a CAA record of x.example.org forbids the certificate authority (letsencrypt.org) from issuing for it',
    'add a CAA record: x.example.org. CAA 0 issue "letsencrypt.org"'],
}
const ZH_RECORDS = 'x.example.org. CNAME web.box.example.com. 或 x.example.org. A 203.0.113.7'
const CHINESE: Record<string, [string, string]> = {
  lookup_failed: ['StackHub 无法检查 x.example.org：the DNS lookup of x.example.org timed out',
    '请检查该域名的 DNS 服务器，然后重试'],
  no_record: ['x.example.org 没有 DNS 记录', `请在 DNS 服务商处创建 ${ZH_RECORDS}`],
  cname_elsewhere: ['x.example.org 是指向 other.host.net 的 CNAME，未指向本机（10.1.1.1）',
    `请在 DNS 服务商处将记录改为 ${ZH_RECORDS}`],
  points_elsewhere: ['x.example.org 指向 10.0.0.9，而不是本机（203.0.113.7）', `请在 DNS 服务商处将记录改为 ${ZH_RECORDS}`],
  caa_forbids: ['x.example.org 的 CAA 记录不允许证书颁发机构（letsencrypt.org）为其签发证书',
    '请添加 CAA 记录：x.example.org. CAA 0 issue "letsencrypt.org"'],
}

describe('dnsProblem', () => {
  beforeAll(() => i18n.global.setLocaleMessage('zh-CN', zh))
  afterEach(() => { i18n.global.locale.value = 'en' })

  it('words every code in English', () => {
    i18n.global.locale.value = 'en'
    for (const [code, c] of Object.entries(CASES)) {
      expect(dnsProblem(c), code).toEqual({ problem: ENGLISH[code][0], fix: ENGLISH[code][1] })
    }
  })

  it('words every code in Chinese, with the records verbatim', () => {
    i18n.global.locale.value = 'zh-CN'
    for (const [code, c] of Object.entries(CASES)) {
      expect(dnsProblem(c), code).toEqual({ problem: CHINESE[code][0], fix: CHINESE[code][1] })
    }
    expect(Object.keys(CASES).sort()).toEqual(Object.keys(zh.dnsProblem.problem).sort())
  })

  it('names the wildcard record, not the probe, and lists every stray address', () => {
    i18n.global.locale.value = 'zh-CN'
    const wild = check({ domain: 'stackhub-wildcard-check.box.example.com', record_name: '*.box.example.com',
      problem_code: 'points_elsewhere', addresses: ['198.51.100.9'], box_addresses: [],
      expected: [] })
    expect(dnsProblemLine(wild)).toBe('*.box.example.com 指向 198.51.100.9，而不是本机（地址未知）：'
      + '请在 DNS 服务商处将记录改为 一条指向本机地址的 A 记录')
  })

  it("falls back to the server's English for an unknown or missing code", () => {
    i18n.global.locale.value = 'zh-CN'
    const future = check({ problem_code: 'dnssec_broken' as Check['problem_code'], problem: 'DNSSEC fails', fix: 'fix DNSSEC' })
    expect(dnsProblem(future)).toEqual({ problem: 'DNSSEC fails', fix: 'fix DNSSEC' })
    expect(dnsProblemLine(check({ problem: 'old server says so', fix: null }))).toBe('old server says so')
    expect(dnsProblem(check({ ok: true }))).toBeNull()
    expect(dnsProblem(null)).toBeNull()
  })

  it('writes records in zone-file form', () => {
    expect(recordText(CNAME)).toBe('x.example.org. CNAME web.box.example.com.')
    expect(recordText(A)).toBe('x.example.org. A 203.0.113.7')
  })
})
