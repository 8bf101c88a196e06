package wspub

import (
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// originPolicy decides which cross-origin pages may connect (Options.OriginPatterns).
type originPolicy struct {
	allowAll bool
	patterns []string // lower-cased, well-formed
}

// newOriginPolicy checks and lower-cases the patterns, returning those that are
// malformed separately so that New can log them.
func newOriginPolicy(o *Options) (originPolicy, []string) {
	p := originPolicy{allowAll: o.InsecureSkipOriginCheck}
	var bad []string
	for _, pat := range o.OriginPatterns {
		pat = strings.ToLower(pat)
		if _, err := path.Match(pat, ""); err != nil {
			bad = append(bad, pat)
			continue
		}
		p.patterns = append(p.patterns, pat)
	}
	return p, bad
}

// allowed reports whether the request's Origin may connect, and the origin it checked.
func (p *originPolicy) allowed(r *http.Request) (bool, string) {
	origin := r.Header.Get("Origin")
	if origin == "" || p.allowAll {
		return true, origin
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false, origin
	}
	if strings.EqualFold(u.Host, r.Host) && !downgrade(u.Scheme, r) {
		return true, origin
	}
	host := strings.ToLower(u.Host)
	full := strings.ToLower(u.Scheme) + "://" + host
	for _, pat := range p.patterns {
		target := host
		if strings.Contains(pat, "://") {
			target = full
		}
		if ok, _ := path.Match(pat, target); ok {
			return true, origin
		}
	}
	return false, origin
}

// downgrade reports whether a page of the hub's own host is served with less security
// than the hub: an http:// page (which anyone on the network path can rewrite) asking a
// hub reached over TLS, directly or, by its X-Forwarded-Proto header, through a proxy
// that terminates TLS. Such a page is not the same origin and needs a pattern of its own.
// An https:// page asking a hub that sees plain HTTP is the usual TLS-terminating proxy
// without that header, and is allowed.
func downgrade(pageScheme string, r *http.Request) bool {
	if !strings.EqualFold(pageScheme, "http") {
		return false
	}
	if r.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// refusal returns what the 403 of a refused origin says: the origin, and how to allow it.
// The pattern it suggests is the one OriginPatterns needs for this page (its host and
// port; https://host:port for an https:// page, so that the pattern does not also admit
// the same host's http:// pages; scheme://host:port for an http:// page of the hub's own
// host reached over TLS), with the characters path.Match treats as special escaped (an IPv6 literal has
// brackets). An origin without a host ("null": a sandboxed iframe, a file: page) cannot
// be allowed by any pattern, so the message names the other option.
func (p *originPolicy) refusal(origin string, r *http.Request) string {
	origin = cutUTF8(origin, maxKeptHeader)
	msg := "origin " + strconv.Quote(origin) + " not allowed; "
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return msg + "a page without a host (a sandboxed iframe, a file: page) cannot be allowed by " +
			"Options.OriginPatterns: serve it over http(s), or set Options.InsecureSkipOriginCheck " +
			"if authentication does not rely on cookies"
	}
	host := strings.ToLower(u.Host)
	if strings.EqualFold(u.Host, r.Host) { // refused only because of downgrade
		return msg + "serve the page over https, or add " +
			quotePattern(strings.ToLower(u.Scheme)+"://"+host) + " to Options.OriginPatterns"
	}
	pattern := host
	if strings.EqualFold(u.Scheme, "https") { // host alone would let the http:// page in too
		pattern = "https://" + host
	}
	return msg + "add " + quotePattern(pattern) + " to Options.OriginPatterns"
}

// quotePattern puts an escaped pattern in double quotes as it is to be written, not in
// Go's quoting: a pattern for an IPv6 literal reads "\[::1]:9000", which pastes into Go
// source (a raw string), YAML or an environment variable alike.
func quotePattern(s string) string { return `"` + escapePattern(s) + `"` }

// escapePattern escapes what path.Match would read as a wildcard or a class.
func escapePattern(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c == '*' || c == '?' || c == '[' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
