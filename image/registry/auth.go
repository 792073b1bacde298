package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Registry authentication: a 401 answer's WWW-Authenticate challenge says
// how. "Basic" takes the configured username and password on every
// request; "Bearer" (the distribution token flow) trades them, or nothing
// for anonymous access, for a token at the realm the challenge names,
// scoped to what the request needs.

// maxTokenResponse bounds a token server's answer.
const maxTokenResponse = 64 << 10

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string            // lowercased: "basic", "bearer"
	params map[string]string // keys lowercased
}

// parseChallenge parses the first challenge of a WWW-Authenticate value:
// a scheme, then comma-separated key=value or key="quoted" parameters.
func parseChallenge(s string) (challenge, error) {
	if len(s) > maxHeaderBytes {
		return challenge{}, fmt.Errorf("WWW-Authenticate over %d bytes", maxHeaderBytes)
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	if scheme == "" || strings.ContainsAny(scheme, "=,\"") {
		return challenge{}, fmt.Errorf("malformed WWW-Authenticate %s", quoted(s))
	}
	ch := challenge{scheme: strings.ToLower(scheme), params: make(map[string]string)}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" || strings.ContainsAny(k, " ,\"") {
			return challenge{}, fmt.Errorf("malformed WWW-Authenticate parameter in %s", quoted(s))
		}
		v = strings.TrimLeft(v, " ")
		var val string
		if strings.HasPrefix(v, "\"") {
			var b strings.Builder
			i := 1
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			if i >= len(v) {
				return challenge{}, fmt.Errorf("unterminated quoted string in WWW-Authenticate %s", quoted(s))
			}
			val, rest = b.String(), v[i+1:]
		} else {
			val, rest, _ = strings.Cut(v, ",")
			rest = "," + rest
			val = strings.TrimSpace(val)
		}
		ch.params[k] = val
		rest = strings.TrimSpace(rest)
		if rest != "" && rest[0] != ',' {
			return challenge{}, fmt.Errorf("malformed WWW-Authenticate %s: junk after %s", quoted(s), k)
		}
		rest = strings.TrimSpace(strings.TrimLeft(rest, ","))
	}
	return ch, nil
}

// authenticate answers a 401's challenge: it sets c.auth for the retry.
func (c *client) authenticate(ctx context.Context, header, scope string) error {
	if header == "" {
		return fmt.Errorf("%s: 401 Unauthorized without a WWW-Authenticate challenge", c.ep.host)
	}
	ch, err := parseChallenge(header)
	if err != nil {
		return fmt.Errorf("%s: %w", c.ep.host, err)
	}
	switch ch.scheme {
	case "basic":
		if c.user == "" {
			return fmt.Errorf("%s: the registry asks for a username and password (basic auth): set username and password_file in [registries.%q]", c.ep.host, c.ep.host)
		}
		c.auth = "Basic " + c.basic()
		return nil
	case "bearer":
		return c.token(ctx, ch, scope)
	}
	return fmt.Errorf("%s: unsupported authentication scheme %q", c.ep.host, ch.scheme)
}

// basic is the base64 of "username:password".
func (c *client) basic() string {
	return base64.StdEncoding.EncodeToString([]byte(c.user + ":" + c.password))
}

// token fetches a bearer token from the challenge's realm.
func (c *client) token(ctx context.Context, ch challenge, scope string) (err error) {
	ctx, cancel := smallFetch(ctx)
	defer cancel()
	defer func() { err = slowFetch(ctx, "token", err) }()
	realm, err := url.Parse(ch.params["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && realm.Scheme != "http") {
		return fmt.Errorf("%s: bearer challenge with an invalid realm %s", c.ep.host, quoted(ch.params["realm"]))
	}
	if realm.Scheme == "http" && !c.ep.insecure {
		return fmt.Errorf("%s: refusing the plain-http token realm %s of a TLS registry", c.ep.host, quoted(realm.String()))
	}
	q := realm.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	if s := ch.params["scope"]; s != "" {
		scope = s
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req := &request{method: "GET", url: realm, length: -1}
	auth := ""
	if c.user != "" {
		auth = "Basic " + c.basic()
	}
	resp, err := c.redirects(ctx, req, auth, realm)
	if err != nil {
		return fmt.Errorf("%s: token from %s: %w", c.ep.host, realm.Host, err)
	}
	body, err := readAll(resp, maxTokenResponse, "token response")
	if err != nil {
		return fmt.Errorf("%s: %w", c.ep.host, err)
	}
	if resp.status != 200 {
		return fmt.Errorf("%s: token server %s answered %d: %s", c.ep.host, realm.Host, resp.status, truncate(string(body)))
	}
	var t struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return fmt.Errorf("%s: token response: %w", c.ep.host, err)
	}
	if t.Token == "" {
		t.Token = t.AccessToken
	}
	if t.Token == "" || strings.ContainsAny(t.Token, "\r\n") {
		return fmt.Errorf("%s: token server %s gave no usable token", c.ep.host, realm.Host)
	}
	c.auth = "Bearer " + t.Token
	return nil
}
