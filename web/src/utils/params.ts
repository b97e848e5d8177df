/** Install parameters in the browser: labels, starting values and validation like the server's. */
import type { Schemas } from '@/api/client'

export type Parameter = Schemas['Parameter']
export type LocalizedText = { [locale: string]: string } | null | undefined

/** A validation problem as an i18n key plus its arguments. */
export interface Problem {
  key: string
  args?: Record<string, string | number>
}

/** Pick text for a locale with fallback: exact, language, English, any (as the server does). */
export function localized(text: LocalizedText, locale: string): string {
  if (!text) return ''
  const lowered = new Map(Object.entries(text).map(([k, v]) => [k.toLowerCase().replace('_', '-'), v]))
  if (lowered.size === 0) return ''
  const want = locale.toLowerCase().replace('_', '-')
  const lang = want.split('-')[0] ?? want
  for (const key of [want, lang, 'en', 'en-us']) {
    const hit = lowered.get(key)
    if (hit !== undefined) return hit
  }
  for (const [key, value] of lowered) if (key.startsWith(lang)) return value
  return lowered.values().next().value ?? ''
}

/** Hidden after creation: shown masked, revealable while installing. */
export function isSecret(param: Parameter): boolean {
  return param.type === 'secret' || param.type === 'password'
}

function defaultText(value: Parameter['default']): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  return String(value)
}

/** Starting values: what the plan resolved (generated secrets, free ports), else defaults. */
export function initialValues(params: Parameter[], planned: Record<string, string> = {}): Record<string, string> {
  const values: Record<string, string> = {}
  for (const param of params) {
    values[param.name] = planned[param.name] ?? defaultText(param.default)
  }
  return values
}

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/
const URL_RE = /^https?:\/\/\S+$/
const LABEL = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const HOST = new RegExp(`^(?=.{1,253}$)${LABEL}(\\.${LABEL})*$`)
const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off', ''])

function fullMatch(pattern: string, value: string): boolean | null {
  try {
    return new RegExp(`^(?:${pattern})$`, 'u').test(value)
  } catch {
    return null // a Python-only pattern: the server checks it
  }
}

function checkNumber(param: Parameter, value: string): Problem | null {
  const number = Number(value)
  if (value.trim() === '' || !Number.isFinite(number)) return { key: 'install.validation.number' }
  if (param.min !== null && param.min !== undefined && number < param.min) {
    return { key: 'install.validation.min', args: { min: param.min } }
  }
  if (param.max !== null && param.max !== undefined && number > param.max) {
    return { key: 'install.validation.max', args: { max: param.max } }
  }
  return null
}

/** Check one value; return the problem or null. Secrets may be left empty (generated). */
export function validateValue(param: Parameter, raw: string | undefined, locale = 'en'): Problem | null {
  const value = raw ?? ''
  if (value === '') {
    if (param.type === 'secret' || param.type === 'port') return null
    return param.required ? { key: 'install.validation.required' } : null
  }
  if (/[\0\r\n]/.test(value)) return { key: 'install.validation.singleLine' }
  const numeric = param.type === 'number' || param.type === 'port'
  if (!numeric) {
    if (param.min !== null && param.min !== undefined && value.length < param.min) {
      return { key: 'install.validation.minLength', args: { min: Math.trunc(param.min) } }
    }
    if (param.max !== null && param.max !== undefined && value.length > param.max) {
      return { key: 'install.validation.maxLength', args: { max: Math.trunc(param.max) } }
    }
  }
  if (param.regex && fullMatch(param.regex, value) === false) {
    const custom = localized(param.regex_error, locale)
    return custom ? { key: 'install.validation.custom', args: { message: custom } }
      : { key: 'install.validation.pattern', args: { pattern: param.regex } }
  }
  switch (param.type) {
    case 'number':
      return checkNumber(param, value)
    case 'port':
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
        return { key: 'install.validation.port' }
      }
      return checkNumber(param, value)
    case 'boolean':
      return TRUE.has(value.toLowerCase()) || FALSE.has(value.toLowerCase()) ? null
        : { key: 'install.validation.boolean' }
    case 'enum':
      return (param.options ?? []).some((o) => o.value === value) ? null
        : { key: 'install.validation.enum' }
    case 'path':
      return value.startsWith('/') && !`${value}/`.includes('/../') && !`${value}/`.includes('/./')
        ? null : { key: 'install.validation.path' }
    case 'email':
      return EMAIL.test(value) ? null : { key: 'install.validation.email' }
    case 'url':
      return URL_RE.test(value) ? null : { key: 'install.validation.url' }
    case 'host':
      return HOST.test(value) ? null : { key: 'install.validation.host' }
    default:
      return null
  }
}

/** Check every value; return problems by parameter name. */
export function validateAll(params: Parameter[], values: Record<string, string>, locale = 'en'): Record<string, Problem> {
  const problems: Record<string, Problem> = {}
  for (const param of params) {
    const problem = validateValue(param, values[param.name], locale)
    if (problem) problems[param.name] = problem
  }
  return problems
}

/** The instance name rule of the server (apps/models.py NAME_PATTERN). */
export const INSTANCE_NAME = /^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$|^[a-z0-9]$/

/** Turn any text into a valid instance name, or '' if nothing usable is left. */
export function slugName(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40)
    .replace(/-+$/g, '')
}
