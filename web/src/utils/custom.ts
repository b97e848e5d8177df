/** Turn the single-image form of a custom install into a compose file. */

export interface PortRow {
  host: number | null
  container: number | null
  protocol: 'tcp' | 'udp'
}

export interface VolumeRow {
  source: string
  target: string
}

export interface EnvRow {
  key: string
  value: string
}

export type RestartPolicy = 'no' | 'always' | 'unless-stopped' | 'on-failure'

export interface SingleImage {
  name: string
  image: string
  command: string
  ports: PortRow[]
  volumes: VolumeRow[]
  env: EnvRow[]
  restart: RestartPolicy
}

export const IMAGE_REF = /^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$/
export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/

export function emptySingleImage(): SingleImage {
  return { name: '', image: '', command: '', ports: [], volumes: [], env: [], restart: 'unless-stopped' }
}

/** JSON strings are valid YAML double-quoted scalars: no injection through values. */
const q = (text: string): string => JSON.stringify(text)

/** Where a volume's data lives: a relative name goes into the instance's own data folder. */
export function volumeSource(source: string): string {
  const trimmed = source.trim()
  if (trimmed.startsWith('/')) return trimmed
  // no way out of the data folder: '.', '..' and empty parts are dropped
  const clean = trimmed.split('/').filter((part) => part && part !== '.' && part !== '..').join('/')
  return `\${APP_DATA_DIR}/${clean || 'data'}`
}

/** Split a command line into words, honouring simple quotes. */
export function splitCommand(text: string): string[] {
  const words: string[] = []
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g
  let match: RegExpExecArray | null
  while ((match = re.exec(text)) !== null) words.push(match[1] ?? match[2] ?? match[3] ?? '')
  return words
}

/** Render the form as a compose file with one service. */
export function singleImageCompose(form: SingleImage): string {
  const service = form.name.trim() || 'app'
  const lines = ['services:', `  ${q(service)}:`, `    image: ${q(form.image.trim())}`]
  if (form.restart !== 'no') lines.push(`    restart: ${q(form.restart)}`)
  const command = splitCommand(form.command)
  if (command.length) lines.push(`    command: [${command.map(q).join(', ')}]`)
  const ports = form.ports.filter((p) => p.container)
  if (ports.length) {
    lines.push('    ports:')
    for (const p of ports) {
      const host = p.host ? `${p.host}:` : ''
      lines.push(`      - ${q(`${host}${p.container}/${p.protocol}`)}`)
    }
  }
  const volumes = form.volumes.filter((v) => v.target.trim())
  if (volumes.length) {
    lines.push('    volumes:')
    for (const v of volumes) lines.push(`      - ${q(`${volumeSource(v.source)}:${v.target.trim()}`)}`)
  }
  const env = form.env.filter((e) => e.key.trim())
  if (env.length) {
    lines.push('    environment:')
    // $ is compose's interpolation character: double it so values stay literal
    for (const e of env) lines.push(`      ${q(e.key.trim())}: ${q(e.value.replace(/\$/g, '$$$$'))}`)
  }
  return `${lines.join('\n')}\n`
}

/** Problems of the single-image form, as i18n keys by field. */
export function checkSingleImage(form: SingleImage): Record<string, string> {
  const problems: Record<string, string> = {}
  if (!IMAGE_REF.test(form.image.trim())) problems.image = 'custom.validation.image'
  form.ports.forEach((p, i) => {
    const bad = (n: number | null) => n !== null && (n < 1 || n > 65535 || !Number.isInteger(n))
    if (!p.container || bad(p.container) || bad(p.host)) problems[`ports.${i}`] = 'install.validation.port'
  })
  form.volumes.forEach((v, i) => {
    if (!v.target.trim().startsWith('/')) problems[`volumes.${i}`] = 'custom.validation.target'
  })
  form.env.forEach((e, i) => {
    if (!ENV_KEY.test(e.key.trim())) problems[`env.${i}`] = 'custom.validation.envKey'
  })
  return problems
}
