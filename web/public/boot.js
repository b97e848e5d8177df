// Loaded first, as a plain script. A browser may drop requests in a network blip: Chromium fails
// every request still waiting for a connection with ERR_NETWORK_CHANGED when the host's
// interfaces change, which Docker does for each network and container it makes or removes.
// - Before the console runs, a script or stylesheet of the page that fails to load means a blank
//   or unstyled page: load the page again (at most 3 times a minute, so a server that is really
//   gone is not hammered).
// - Once it runs, a stylesheet that fails (a lazily loaded part's styles) is asked for again, a
//   moment later, up to 3 times; failed chunks of code are retried by utils/lazy.ts.
;(function () {
  var KEY = 'stackhub:reloads'
  var LIMIT = 3
  var WINDOW = 60000 // ms
  var tries = {}
  function mounted() {
    var app = document.getElementById('app')
    return Boolean(app && app.hasChildNodes())
  }
  function isStylesheet(el) {
    return el.tagName.toLowerCase() === 'link' && /(^|\s)stylesheet(\s|$)/i.test(el.rel || '')
  }
  function reload() {
    var now = Date.now()
    var state = { n: 0, at: now }
    try {
      state = JSON.parse(sessionStorage.getItem(KEY) || '') || state
    } catch (err) { /* first time, or storage unavailable */ }
    if (now - state.at > WINDOW) state = { n: 0, at: now }
    if (state.n >= LIMIT) return
    state.n += 1
    try {
      sessionStorage.setItem(KEY, JSON.stringify(state))
    } catch (err) {
      return // without a counter a reload could loop
    }
    setTimeout(function () { window.location.reload() }, 300 * state.n)
  }
  function reloadStylesheet(link) {
    var base = link.href.split(/[?&]retry=/)[0]
    var n = (tries[base] || 0) + 1
    if (n > LIMIT) return
    tries[base] = n
    setTimeout(function () {
      var again = link.cloneNode()
      again.href = base + (base.indexOf('?') < 0 ? '?' : '&') + 'retry=' + n
      link.parentNode ? link.parentNode.insertBefore(again, link.nextSibling) : document.head.appendChild(again)
    }, 400 * n)
  }
  window.addEventListener('error', function (event) {
    var el = event.target
    if (!el || !el.tagName) return
    var script = el.tagName.toLowerCase() === 'script' && Boolean(el.src)
    if (!script && !isStylesheet(el)) return
    if (!mounted()) reload()
    else if (!script) reloadStylesheet(el)
  }, true)
})()
