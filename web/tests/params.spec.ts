import { describe, expect, it } from 'vitest'
import { initialValues, isSecret, localized, slugName, validateAll, validateValue, INSTANCE_NAME, type Parameter } from '@/utils/params'

function param(extra: Partial<Parameter>): Parameter {
  return { name: 'X', type: 'string', required: false, encoding: 'alnum', length: 32, protocol: 'tcp', init_only: false, ...extra } as Parameter
}

describe('localized', () => {
  it('falls back like the server: exact, language, English, any', () => {
    expect(localized({ en: 'Port', 'zh-CN': '端口' }, 'zh-CN')).toBe('端口')
    expect(localized({ en: 'Port', zh_cn: '端口' }, 'zh-CN')).toBe('端口')
    expect(localized({ en: 'Port', zh: '端口' }, 'zh-TW')).toBe('端口')
    expect(localized({ en: 'Port' }, 'fr')).toBe('Port')
    expect(localized({ de: 'Hafen' }, 'fr')).toBe('Hafen')
    expect(localized(null, 'en')).toBe('')
  })
})

describe('validateValue', () => {
  it('requires required values but lets secrets and ports be generated', () => {
    expect(validateValue(param({ required: true }), '')?.key).toBe('install.validation.required')
    expect(validateValue(param({ type: 'secret', required: true }), '')).toBeNull()
    expect(validateValue(param({ type: 'port', required: true }), '')).toBeNull()
  })
  it('checks ports and numbers with their bounds', () => {
    expect(validateValue(param({ type: 'port' }), '70000')?.key).toBe('install.validation.port')
    expect(validateValue(param({ type: 'port' }), '8080')).toBeNull()
    expect(validateValue(param({ type: 'number', min: 2, max: 5 }), '1')).toEqual({ key: 'install.validation.min', args: { min: 2 } })
    expect(validateValue(param({ type: 'number', max: 5 }), '6')?.key).toBe('install.validation.max')
    expect(validateValue(param({ type: 'number' }), 'abc')?.key).toBe('install.validation.number')
  })
  it('treats min and max of text as lengths', () => {
    expect(validateValue(param({ max: 3 }), 'abcd')).toEqual({ key: 'install.validation.maxLength', args: { max: 3 } })
    expect(validateValue(param({ min: 3 }), 'ab')?.key).toBe('install.validation.minLength')
  })
  it('uses the regex and its localized message', () => {
    const p = param({ regex: '^[a-z ]+$', regex_error: { en: 'Lowercase only', 'zh-CN': '只能小写' } })
    expect(validateValue(p, 'Hello', 'zh-CN')).toEqual({ key: 'install.validation.custom', args: { message: '只能小写' } })
    expect(validateValue(p, 'hello there')).toBeNull()
    expect(validateValue(param({ regex: '(?P<x>a)' }), 'b')).toBeNull() // Python-only syntax: server decides
  })
  it('checks the typed formats', () => {
    expect(validateValue(param({ type: 'email' }), 'a@b.co')).toBeNull()
    expect(validateValue(param({ type: 'email' }), 'nope')?.key).toBe('install.validation.email')
    expect(validateValue(param({ type: 'url' }), 'ftp://x')?.key).toBe('install.validation.url')
    expect(validateValue(param({ type: 'host' }), 'my-host.lan')).toBeNull()
    expect(validateValue(param({ type: 'path' }), '/srv/../etc')?.key).toBe('install.validation.path')
    expect(validateValue(param({ type: 'boolean' }), 'maybe')?.key).toBe('install.validation.boolean')
    expect(validateValue(param({ type: 'enum', options: [{ value: 'a' }] }), 'b')?.key).toBe('install.validation.enum')
    expect(validateValue(param({}), 'two\nlines')?.key).toBe('install.validation.singleLine')
  })
  it('collects problems by name', () => {
    const params = [param({ name: 'A', required: true }), param({ name: 'B' })]
    expect(Object.keys(validateAll(params, { A: '', B: 'x' }))).toEqual(['A'])
  })
})

describe('initialValues', () => {
  it('prefers planned values (generated secrets, free ports) over defaults', () => {
    const params = [param({ name: 'P', type: 'port', default: 8080 }), param({ name: 'S', type: 'secret' }),
      param({ name: 'B', type: 'boolean', default: true })]
    expect(initialValues(params, { P: '18080', S: 'generated' })).toEqual({ P: '18080', S: 'generated', B: 'true' })
    expect(isSecret(params[1]!)).toBe(true)
  })
})

describe('instance names', () => {
  it('slugs any text into the server rule', () => {
    expect(slugName('My Blog!')).toBe('my-blog')
    expect(INSTANCE_NAME.test(slugName('--x--'))).toBe(true)
    expect(slugName('a'.repeat(60)).length).toBe(40)
    expect(INSTANCE_NAME.test('-bad')).toBe(false)
  })
})
