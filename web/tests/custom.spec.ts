import { describe, expect, it } from 'vitest'
import { checkSingleImage, emptySingleImage, singleImageCompose, splitCommand, volumeSource } from '@/utils/custom'

describe('single image form', () => {
  it('renders a one-service compose file with quoted values', () => {
    const form = { ...emptySingleImage(), name: 'web', image: 'nginx:1.27', command: 'nginx -g "daemon off;"',
      ports: [{ host: 8080, container: 80, protocol: 'tcp' as const }, { host: null, container: 53, protocol: 'udp' as const }],
      volumes: [{ source: 'html', target: '/usr/share/nginx/html' }, { source: '/srv/x', target: '/x' }],
      env: [{ key: 'GREETING', value: 'a "quoted" $HOME: value' }] }
    expect(singleImageCompose(form)).toBe([
      'services:',
      '  "web":',
      '    image: "nginx:1.27"',
      '    restart: "unless-stopped"',
      '    command: ["nginx", "-g", "daemon off;"]',
      '    ports:',
      '      - "8080:80/tcp"',
      '      - "53/udp"',
      '    volumes:',
      '      - "${APP_DATA_DIR}/html:/usr/share/nginx/html"',
      '      - "/srv/x:/x"',
      '    environment:',
      '      "GREETING": "a \\"quoted\\" $$HOME: value"',
      '',
    ].join('\n'))
  })

  it('keeps relative volume names inside the app data folder', () => {
    expect(volumeSource('data')).toBe('${APP_DATA_DIR}/data')
    expect(volumeSource('../../etc')).toBe('${APP_DATA_DIR}/etc')
    expect(volumeSource('./a/../b')).toBe('${APP_DATA_DIR}/a/b')
    expect(volumeSource('')).toBe('${APP_DATA_DIR}/data')
  })

  it('splits commands with quotes', () => {
    expect(splitCommand(`sh -c 'echo hi' "a b"`)).toEqual(['sh', '-c', 'echo hi', 'a b'])
  })

  it('reports field problems', () => {
    const form = { ...emptySingleImage(), image: 'Not An Image', ports: [{ host: 70000, container: 80, protocol: 'tcp' as const }],
      volumes: [{ source: 'x', target: 'relative' }], env: [{ key: '1BAD', value: '' }] }
    expect(checkSingleImage(form)).toEqual({ image: 'custom.validation.image', 'ports.0': 'install.validation.port',
      'volumes.0': 'custom.validation.target', 'env.0': 'custom.validation.envKey' })
    expect(checkSingleImage({ ...emptySingleImage(), image: 'ghcr.io/owner/app:2.0' })).toEqual({})
  })
})
