/** Render store-supplied markdown safely: raw HTML off in the parser, DOMPurify afterwards. */
import MarkdownIt from 'markdown-it'
import DOMPurify from 'dompurify'

const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false })

// links leave the console in a new tab without access to it
const defaultLink = md.renderer.rules.link_open
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  const token = tokens[idx]!
  token.attrSet('target', '_blank')
  token.attrSet('rel', 'noopener noreferrer nofollow')
  return defaultLink ? defaultLink(tokens, idx, options, env, self)
    : self.renderToken(tokens, idx, options)
}

/** Return sanitized HTML for a markdown text. */
export function renderMarkdown(text: string | null | undefined): string {
  if (!text) return ''
  const html = md.render(text)
  return DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'iframe', 'object', 'embed'],
    FORBID_ATTR: ['style'],
    ADD_ATTR: ['target'],
  })
}
