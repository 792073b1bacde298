package registry

import (
	"strings"
	"testing"

	"berth/image"
)

// FuzzParseManifest: any bytes give a checked manifest or an error,
// never a panic; a parsed image manifest has 1 to image.MaxLayers layers
// with valid digests.
func FuzzParseManifest(f *testing.F) {
	m, _, _ := fakeManifest(&testing.T{})
	f.Add(m, "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"+`","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`), MediaOCIIndex)
	f.Add([]byte(`{"schemaVersion":1}`), MediaDockerManif)
	f.Fuzz(func(t *testing.T, b []byte, ct string) {
		m, err := parseManifest(b, ct)
		if err != nil {
			return
		}
		if !m.isIndex() && (len(m.Layers) == 0 || len(m.Layers) > image.MaxLayers) {
			t.Fatalf("accepted %d layers", len(m.Layers))
		}
	})
}

// FuzzParseChallenge: any WWW-Authenticate value parses or fails cleanly.
func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"`)
	f.Add(`Basic realm="x"`)
	f.Add(`Bearer realm="a\"b", error="invalid_token"`)
	f.Fuzz(func(t *testing.T, s string) {
		ch, err := parseChallenge(s)
		if err == nil && ch.scheme == "" {
			t.Fatal("empty scheme accepted")
		}
	})
}

func TestParseChallenge(t *testing.T) {
	for _, c := range []struct {
		in     string
		scheme string
		params map[string]string
		err    bool
	}{
		{`Bearer realm="https://a/token",service="reg",scope="repository:x/y:pull,push"`, "bearer",
			map[string]string{"realm": "https://a/token", "service": "reg", "scope": "repository:x/y:pull,push"}, false},
		{`Basic realm=berth`, "basic", map[string]string{"realm": "berth"}, false},
		{`Bearer realm="unterminated`, "", nil, true},
		{`Bearer realm="a" junk`, "", nil, true},
		{``, "", nil, true},
	} {
		ch, err := parseChallenge(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: error %v, want error %v", c.in, err, c.err)
			continue
		}
		if err != nil {
			continue
		}
		if ch.scheme != c.scheme || len(ch.params) != len(c.params) {
			t.Errorf("%q: %+v", c.in, ch)
		}
		for k, v := range c.params {
			if ch.params[k] != v {
				t.Errorf("%q: %s = %q, want %q", c.in, k, ch.params[k], v)
			}
		}
	}
}

func TestParseRef(t *testing.T) {
	d := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		in   string
		want Ref
		err  string
	}{
		{"docker://reg.example:5000/a/b:v1", Ref{Host: "reg.example:5000", Repo: "a/b", Tag: "v1"}, ""},
		{"docker://reg.example/a", Ref{Host: "reg.example", Repo: "a", Tag: "latest"}, ""},
		{"docker://10.0.2.2:5000/x@" + d, Ref{Host: "10.0.2.2:5000", Repo: "x", Digest: d}, ""},
		{"docker://[::1]:5000/x:t@" + d, Ref{Host: "[::1]:5000", Repo: "x", Tag: "t", Digest: d}, ""},
		{"docker://debian", Ref{}, "explicit registry host"},
		{"docker://reg/A", Ref{}, "invalid repository component"},
		{"docker://reg/a:-x", Ref{}, "invalid tag"},
		{"docker://reg:99999/a", Ref{}, "invalid port"},
		{"docker://reg/a@sha256:xyz", Ref{}, "not 64 lowercase hex"},
		{"oci:/tmp/x", Ref{}, "want docker://"},
		{"docker://reg/a..b", Ref{}, "invalid repository component"},
	} {
		r, err := ParseRef(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || r != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.in, r, err, c.want)
		}
		if err == nil && r.String() != c.in && c.want.Tag != "latest" {
			t.Errorf("%s: String() %s", c.in, r.String())
		}
	}
}
