package registry

import (
	"fmt"
	"strings"

	"berth/image"
)

// Scheme prefixes every image reference a registry serves, as in skopeo
// and podman.
const Scheme = "docker://"

// Ref is a parsed "docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]".
type Ref struct {
	Host   string // "HOST[:PORT]", always explicit
	Repo   string // "library/debian"
	Tag    string // "" when only a digest is given
	Digest string // "" unless pinned
}

// IsRef reports whether s names a registry image (starts with docker://).
func IsRef(s string) bool { return strings.HasPrefix(s, Scheme) }

// String is the reference as parsed.
func (r Ref) String() string {
	s := Scheme + r.Host + "/" + r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// reference is what a manifest is asked for by: the digest when pinned,
// else the tag.
func (r Ref) reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// maxRefLength bounds a reference (docker's limit for a name is 255).
const maxRefLength = 512

// ParseRef parses a reference. The host is never implied: unlike docker,
// "docker://debian" is refused, since its first component names the host.
// Without a tag or digest the tag is "latest".
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Ref{}, fmt.Errorf("image reference %q: want docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]", s)
	}
	if len(s) > maxRefLength {
		return Ref{}, fmt.Errorf("image reference: %d bytes, over the limit of %d", len(s), maxRefLength)
	}
	var r Ref
	if name, digest, ok := strings.Cut(rest, "@"); ok {
		if err := image.CheckDigest(digest); err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
		}
		rest, r.Digest = name, digest
	}
	host, repo, ok := strings.Cut(rest, "/")
	if !ok || repo == "" {
		return Ref{}, fmt.Errorf("image reference %q: no repository after the host (berth needs an explicit registry host: docker://HOST[:PORT]/REPO)", s)
	}
	if i := strings.LastIndexByte(repo, ':'); i >= 0 {
		repo, r.Tag = repo[:i], repo[i+1:]
		if !validTag(r.Tag) {
			return Ref{}, fmt.Errorf("image reference %q: invalid tag %q", s, r.Tag)
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	if err := CheckHost(host); err != nil {
		return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	for _, c := range strings.Split(repo, "/") {
		if !validComponent(c) {
			return Ref{}, fmt.Errorf("image reference %q: invalid repository component %q (lowercase letters, digits and separators . _ __ -)", s, c)
		}
	}
	r.Host, r.Repo = host, repo
	return r, nil
}

// CheckHost accepts "HOST[:PORT]": a DNS name or IPv4 address, or an IPv6
// address in brackets, and an optional port 1-65535.
func CheckHost(h string) error {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Errorf("host %q: unclosed [", h)
		}
		name, port = h[1:end], h[end+1:]
		if strings.Trim(name, "0123456789abcdefABCDEF:.") != "" || name == "" {
			return fmt.Errorf("host %q: invalid IPv6 address", h)
		}
		if port != "" && port[0] != ':' {
			return fmt.Errorf("host %q: junk after ]", h)
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if name == "" || !validHostname(name) {
			return fmt.Errorf("host %q: invalid host name", h)
		}
	} else if !validHostname(name) {
		return fmt.Errorf("host %q: invalid host name", h)
	}
	if port != "" || strings.HasSuffix(h, ":") {
		n := 0
		for _, c := range port {
			if c < '0' || c > '9' || n > 65535 {
				n = -1
				break
			}
			n = n*10 + int(c-'0')
		}
		if n < 1 || n > 65535 || len(port) > 5 {
			return fmt.Errorf("host %q: invalid port %q", h, port)
		}
	}
	return nil
}

// validHostname accepts DNS labels of letters, digits and hyphens.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validComponent is distribution's path component grammar:
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func validComponent(c string) bool {
	if c == "" {
		return false
	}
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	for i := 0; i < len(c); {
		if !alnum(c[i]) {
			return false
		}
		for i < len(c) && alnum(c[i]) {
			i++
		}
		if i == len(c) {
			return true
		}
		switch {
		case c[i] == '.':
			i++
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '_':
			i++
		default:
			for i < len(c) && c[i] == '-' {
				i++
			}
		}
		if i == len(c) {
			return false
		}
	}
	return true
}

// validTag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
