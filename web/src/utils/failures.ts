/** Common engine and registry failures recognised in an error text, for a cause in plain words. */

export interface Cause {
  /** i18n key under install.causes */
  key: string
  /** values for the message: the registry's name, the image */
  registry: string
  image: string
}

const DOCKER_HUB = /^(registry-1\.docker\.io|index\.docker\.io|docker\.io|registry\.hub\.docker\.com)$/i

const RULES: [string, RegExp][] = [
  ['dns', /no such host|server misbehaving|temporary failure in name resolution|name or service not known|lookup \S+ on \S+/i],
  ['unreachable', /i\/o timeout|connection refused|network is unreachable|no route to host|tls handshake timeout|context deadline exceeded|connection reset by peer/i],
  ['rateLimit', /toomanyrequests|too many requests|rate limit/i],
  ['arch', /no matching manifest for/i],
  ['notFound', /manifest unknown|not found: manifest|repository does not exist|pull access denied|name unknown|: not found/i],
  ['auth', /unauthorized|authentication required|denied: requested access/i],
  ['disk', /no space left on device/i],
  ['port', /port is already allocated|address already in use/i],
]

/** The image named in the text ("could not pull image X: ..."), if any. */
function imageOf(text: string): string {
  const match = /pull(?:ing)? image[:\s]+["']?([^\s"':]+(?::\d+)?[^\s"':]*(?::[\w.-]+)?)/i.exec(text)
  return match ? match[1].replace(/[,.;]+$/, '') : ''
}

/** The registry a text talks about: from a URL, a DNS lookup, or the image's first part. */
function registryOf(text: string, image: string): string {
  const url = /https?:\/\/([^/"\s]+)\/v2\//i.exec(text)
  const lookup = /lookup ([^\s:]+)/i.exec(text)
  let host = url?.[1] ?? lookup?.[1] ?? ''
  if (!host && image) {
    const first = image.split('/')[0]
    host = image.includes('/') && /[.:]|^localhost$/.test(first) ? first : 'docker.io'
  }
  return DOCKER_HUB.test(host) ? 'Docker Hub' : host
}

/** Recognise a failure; null when the text is nothing we know. */
export function recognise(text: string | null | undefined): Cause | null {
  if (!text) return null
  const rule = RULES.find(([, pattern]) => pattern.test(text))
  if (!rule) return null
  const image = imageOf(text)
  return { key: rule[0], registry: registryOf(text, image) || '?', image }
}
