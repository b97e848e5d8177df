import { describe, expect, it } from 'vitest'
import { i18n } from '@/i18n'
import { recognise } from '@/utils/failures'
import { auditAction, auditDetails } from '@/utils/audit'
import { errorText, errorTitle } from '@/utils/errors'
import { ApiError } from '@/api/errors'

describe('recognise', () => {
  it('names Docker Hub when its address does not resolve', () => {
    const cause = recognise('could not pull image nginx:1.27: Error response from daemon: Get '
      + '"https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 127.0.0.53:53: no such host')
    expect(cause).toEqual({ key: 'dns', registry: 'Docker Hub', image: 'nginx:1.27' })
  })
  it('names another registry from the lookup', () => {
    const cause = recognise('could not pull image registry.invalid/a/b:1: dial tcp: lookup registry.invalid: no such host')
    expect(cause?.key).toBe('dns')
    expect(cause?.registry).toBe('registry.invalid')
    expect(cause?.image).toBe('registry.invalid/a/b:1')
  })
  it('tells missing images, rate limits, full disks and taken ports apart', () => {
    expect(recognise('could not pull image 127.0.0.1:5000/nope:9\nmanifest unknown')?.key).toBe('notFound')
    expect(recognise('toomanyrequests: You have reached your pull rate limit')?.key).toBe('rateLimit')
    expect(recognise('write /var/lib/docker/x: no space left on device')?.key).toBe('disk')
    expect(recognise('Bind for 0.0.0.0:8080 failed: port is already allocated')?.key).toBe('port')
  })
  it('leaves unknown text alone', () => {
    expect(recognise('the app exited with code 3')).toBeNull()
    expect(recognise('')).toBeNull()
  })
})

describe('audit texts', () => {
  it('translate actions and spell details out', () => {
    i18n.global.locale.value = 'en'
    expect(auditAction('instance.install')).toBe('Install app')
    expect(auditAction('something.new')).toBe('something.new')
    const text = auditDetails({ operation: 'abcdef0123456789', outcome: 'interrupted', purge: true, session: 's1' }, 'en')
    expect(text).toBe('Operation: abcdef012345 · Outcome: Interrupted · Data deleted: yes')
    expect(auditDetails({ outcome: 'failed', reason: 'wrong password' }, 'en')).toBe('Reason: wrong password')
  })
})

describe('error texts', () => {
  it('say what failed by the reason the server sends', () => {
    i18n.global.locale.value = 'en'
    const err = new ApiError(401, 'unauthorized', 'invalid username or password', { reason: 'bad_login' })
    expect(errorTitle(err)).toBe('Wrong username or password')
    expect(errorText(err)).toContain('Check both')
  })
  it('keep the server words in English and translate the code otherwise', () => {
    i18n.global.locale.value = 'en'
    const err = new ApiError(409, 'conflict', 'instance blog is busy')
    expect(errorTitle(err)).toBe('Not possible right now')
    expect(errorText(err)).toBe('instance blog is busy')
  })
})
