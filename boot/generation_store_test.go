package boot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const genTestConfig = `
[[container]]
name = "web"
image = "web.tar.zst"
command = ["true"]
`

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestUpdateConfigKeys checks [update] at the edges of its ranges.
func TestUpdateConfigKeys(t *testing.T) {
	tests := []struct {
		toml  string
		grace time.Duration
		boots int
		err   string
	}{
		{"", DefaultGracePeriod, DefaultMaxBootAttempts, ""},
		{`grace_period = ""`, DefaultGracePeriod, DefaultMaxBootAttempts, ""}, // the key left out
		{`grace_period = "0s"`, 0, 3, ""},
		{`grace_period = "1h"`, time.Hour, 3, ""},
		{`grace_period = "1h0m1s"`, 0, 0, `update.grace_period: invalid duration "1h0m1s": want 0s to 1h0m0s`},
		{`grace_period = "-1s"`, 0, 0, "update.grace_period: invalid duration"},
		{`grace_period = "soon"`, 0, 0, "update.grace_period: invalid duration"},
		{`max_boot_attempts = 1`, DefaultGracePeriod, 1, ""},
		{`max_boot_attempts = 10`, DefaultGracePeriod, 10, ""},
		{`max_boot_attempts = 11`, 0, 0, "update.max_boot_attempts: 11: want 1 to 10"},
		{`max_boot_attempts = 0`, 0, 0, "update.max_boot_attempts: 0: want 1 to 10"},
		{`max_boot_attempts = -1`, 0, 0, "update.max_boot_attempts: -1: want 1 to 10"},
		{`max_boot_attempts = "3"`, 0, 0, "update.max_boot_attempts"},
		{`grace = "1s"`, 0, 0, "update.grace"},
	}
	for _, tc := range tests {
		cfg, err := ParseConfig("/etc/berth.toml", []byte("[update]\n"+tc.toml+"\n"+genTestConfig))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "/etc/berth.toml:") {
				t.Errorf("%s: error %v, want one with %q", tc.toml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.toml, err)
			continue
		}
		if cfg.Update.grace() != tc.grace || cfg.Update.maxBoots() != tc.boots {
			t.Errorf("%s: grace %s, boots %d", tc.toml, cfg.Update.grace(), cfg.Update.maxBoots())
		}
	}
}

// TestParseRecord feeds the record parser what a damaged disk or a
// hostile hand could leave: each is refused with an error, none panics.
func TestParseRecord(t *testing.T) {
	tests := []struct {
		name, data, err string
	}{
		{"good", `{"committed":2,"previous":1,"trying":3,"boots":1,"base":"` + digestA + `"}`, ""},
		{"empty", ``, "EOF"},
		{"truncated", `{"committed":2,"prev`, "unexpected EOF"},
		{"not JSON", "\x00\xff\x00", "invalid character"},
		{"no committed", `{}`, "committed generation 0"},
		{"negative", `{"committed":-1}`, "committed generation -1"},
		{"previous ahead", `{"committed":2,"previous":2}`, "previous generation 2"},
		{"trying behind", `{"committed":2,"trying":1}`, "trying generation 1"},
		{"boots", `{"committed":1,"trying":2,"boots":11}`, "boots 11"},
		{"bad base", `{"committed":1,"base":"md5:00"}`, "not a sha256 digest"},
		{"unknown field", `{"committed":1,"evil":true}`, "unknown field"},
		{"trailing", `{"committed":1}{"committed":2}`, "trailing data"},
		{"huge number", `{"committed":1e400}`, "cannot unmarshal"},
		{"committed at the bound", `{"committed":2147483647}`, ""},
		{"committed past it", `{"committed":2147483648}`, "committed generation 2147483648: want 1 to 2147483647"},
		{"committed at int's end", `{"committed":9223372036854775807}`, "committed generation 9223372036854775807"},
		{"trying past the bound", `{"committed":1,"trying":2147483648}`, "trying generation 2147483648"},
		{"rollback from past the bound", `{"committed":1,"last_rollback":{"from":9223372036854775807,"to":1}}`, "last rollback from"},
		{"rollback to a negative", `{"committed":1,"last_rollback":{"from":2,"to":-1}}`, "last rollback from"},
		{"long reason", `{"committed":1,"last_rollback":{"reason":"` + strings.Repeat("x", maxReasonLen+1) + `"}}`, "longer than"},
		{"oversize", `{"committed":1,"base":"` + strings.Repeat(" ", maxRecordSize) + `"}`, "larger than"},
	}
	for _, tc := range tests {
		r, err := parseRecord([]byte(tc.data))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one with %q (parsed %+v)", tc.name, err, tc.err, r)
		}
	}
}

// newTestStore is a store with generation 1 (committed, marked) and
// generation 2 written.
func newTestStore(t *testing.T) *genStore {
	t.Helper()
	g, err := openGenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		gen := &generation{genMeta: genMeta{Number: n, Source: "/etc/berth.toml", Images: map[string]genImage{"web": {Digest: digestA}}}, Config: []byte(genTestConfig)}
		if err := g.writeGeneration(gen); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.writeRecord(genRecord{Committed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := g.markCommitted(1); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGenStoreRoundTrip writes a record and a generation and reads them
// back: the config comes back resolved, the web's digest pinned.
func TestGenStoreRoundTrip(t *testing.T) {
	g := newTestStore(t)
	r, ok, err := g.readRecord()
	if err != nil || !ok || r.Committed != 1 {
		t.Fatalf("record %+v %v %v", r, ok, err)
	}
	gen, cfg, err := g.readGeneration(2)
	if err != nil {
		t.Fatal(err)
	}
	if gen.Number != 2 || cfg.Container[0].Digest != digestA || cfg.ImagePath(cfg.Container[0]) != "/etc/web.tar.zst" {
		t.Errorf("generation %+v, config %+v", gen.genMeta, cfg.Container[0])
	}
	if got := g.lastMarked(0); got != 1 {
		t.Errorf("last marked %d, want 1", got)
	}
	g.prune(1)
	if _, _, err := g.readGeneration(2); err == nil {
		t.Error("prune kept generation 2")
	}
	// Leftovers of interrupted writes go too.
	os.WriteFile(filepath.Join(g.dir, ".current-99"), []byte("{"), 0o600)
	os.Mkdir(filepath.Join(g.dir, ".new-3"), 0o700)
	g.prune(1)
	if ents, _ := os.ReadDir(g.dir); len(ents) != 2 {
		t.Errorf("after prune: %v", ents)
	}
}

// TestGenStoreHostile damages the store's files: each read fails with
// an error naming the file, and the committed mark still finds a safe
// generation.
func TestGenStoreHostile(t *testing.T) {
	meta := func(m map[string]any) string {
		b, _ := json.Marshal(m)
		return string(b)
	}
	images := map[string]any{"web": map[string]any{"digest": digestA}}
	tests := []struct {
		name string
		// damage changes generation 2's directory (or, with record, the record).
		damage func(t *testing.T, dir string)
		record bool
		err    string
	}{
		{"record truncated", func(t *testing.T, dir string) { writeT(t, filepath.Join(dir, "current"), `{"commi`) }, true, "unexpected EOF"},
		{"record oversize", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "current"), strings.Repeat(" ", maxRecordSize+1))
		}, true, "larger than"},
		{"record symlink", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "current"))
			os.Symlink("/etc/passwd", filepath.Join(dir, "current"))
		}, true, "current"},
		{"record fifo-like dir", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "current"))
			os.Mkdir(filepath.Join(dir, "current"), 0o700)
		}, true, "not a regular file"},
		{"config missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "2", "config.toml")) }, false, "config.toml"},
		{"config rewritten", func(t *testing.T, dir string) { writeT(t, filepath.Join(dir, "2", "config.toml"), "[[container]]\n") }, false, "config.toml is damaged: 14 bytes"},
		{"config emptied", func(t *testing.T, dir string) { writeT(t, filepath.Join(dir, "2", "config.toml"), "") }, false, "config.toml is damaged: 0 bytes"},
		{"config invalid, an older berth's generation (no digest)", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "2", "config.toml"), "[[container]]\n")
			writeT(t, filepath.Join(dir, "2", "generation.json"), meta(map[string]any{"number": 2, "source": "/etc/berth.toml", "images": images}))
		}, false, "missing image"},
		{"config oversize", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "2", "config.toml"), strings.Repeat("#", maxConfigSize+1))
		}, false, "larger than"},
		{"meta truncated", func(t *testing.T, dir string) { writeT(t, filepath.Join(dir, "2", "generation.json"), `{"number":2,`) }, false, "generation.json"},
		{"meta unknown container", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "2", "generation.json"), meta(map[string]any{"number": 2, "source": "/etc/berth.toml",
				"images": map[string]any{"evil": map[string]any{"digest": digestA}}}))
		}, false, "no such container"},
		{"meta bad digest", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "2", "generation.json"), meta(map[string]any{"number": 2, "source": "/etc/berth.toml",
				"images": map[string]any{"web": map[string]any{"digest": "sha256:../../x"}}}))
		}, false, "image of container web"},
		{"meta wrong number", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "2", "generation.json"), meta(map[string]any{"number": 7, "source": "/etc/berth.toml", "images": images}))
		}, false, "says it is generation 7"},
		{"meta relative source", func(t *testing.T, dir string) {
			writeT(t, filepath.Join(dir, "2", "generation.json"), meta(map[string]any{"number": 2, "source": "berth.toml", "images": images}))
		}, false, "want an absolute path"},
		{"generation is a symlink", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "2"))
			os.Symlink(filepath.Join(dir, "1"), filepath.Join(dir, "2"))
		}, false, "generation 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestStore(t)
			tc.damage(t, g.dir)
			var err error
			if tc.record {
				_, _, err = g.readRecord()
			} else {
				_, _, err = g.readGeneration(2)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want one with %q", err, tc.err)
			}
			if got := g.lastMarked(0); got != 1 {
				t.Errorf("fallback: last marked %d, want 1", got)
			}
		})
	}
}

// TestSelectGenerationFallback boots (the generation phase) on a store
// whose record is damaged: it falls back to the last committed
// generation and repairs the record; with nothing marked, it boots the
// boot config file as generation 1.
func TestSelectGenerationFallback(t *testing.T) {
	for _, marked := range []bool{true, false} {
		state := t.TempDir()
		g, err := openGenStore(state)
		if err != nil {
			t.Fatal(err)
		}
		gen := &generation{genMeta: genMeta{Number: 4, Source: "/etc/gen4.toml", Images: map[string]genImage{}}, Config: []byte(genTestConfig)}
		if err := g.writeGeneration(gen); err != nil {
			t.Fatal(err)
		}
		if marked {
			g.markCommitted(4)
		}
		writeT(t, filepath.Join(g.dir, "current"), "\x00garbage")
		bootCfg := filepath.Join(t.TempDir(), "berth.toml")
		writeT(t, bootCfg, genTestConfig)
		var log strings.Builder
		b := bootGeneration(t, state, bootCfg, &log)
		b.log.Flush(5 * time.Second) // the log is read below
		r, ok, err := g.readRecord()
		switch {
		case marked && (b.cfg.path != "/etc/gen4.toml" || !ok || r.Committed != 4 || err != nil):
			t.Errorf("marked: booting %s, record %+v %v %v\n%s", b.cfg.path, r, ok, err, log.String())
		case !marked && (b.cfg.path != bootCfg || !b.gens.first):
			t.Errorf("unmarked: booting %s, first %v\n%s", b.cfg.path, b.gens.first, log.String())
		}
		if !strings.Contains(log.String(), "WARNING: generation record:") {
			t.Errorf("no warning:\n%s", log.String())
		}
	}
}

// bootGeneration runs the generation phase of a boot of bootCfg on state.
func bootGeneration(t *testing.T, state, bootCfg string, log *strings.Builder) *booter {
	t.Helper()
	cfg, data, err := loadConfigFile(bootCfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &booter{opts: Options{StateDir: state}, log: NewLogger(log), cfg: cfg, cfgData: data}
	if err := b.selectGeneration(); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeT(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGenerationRegistryRef: a generation runs a registry image by the
// reference its tag resolved to, pinned to that digest; a recorded
// reference that is not the config's image, or that its pins refuse, makes
// the generation unreadable rather than run something else.
func TestGenerationRegistryRef(t *testing.T) {
	const host = "docker://10.0.0.2:5000/fleet/app"
	pinA, pinB := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	config := func(image, digest string) []byte {
		c := "[[container]]\nname = \"app\"\nimage = \"" + image + "\"\ncommand = [\"true\"]\n"
		if digest != "" {
			c += "digest = \"" + digest + "\"\n"
		}
		return []byte(c)
	}
	tests := []struct {
		name, image, digest, ref, want string
	}{
		{"tag", host + ":v2", "", host + ":v2@" + pinA, ""},
		{"tag and pin", host + ":v2", pinA, host + ":v2@" + pinA, ""},
		{"pinned reference", host + "@" + pinA, "", host + "@" + pinA, ""},
		{"another tag", host + ":v2", "", host + ":v3@" + pinA, "is not " + host + ":v2 pinned to a digest"},
		{"another repository", host + ":v2", "", "docker://10.0.0.2:5000/fleet/other:v2@" + pinA, "is not"},
		{"no digest", host + ":v2", "", host + ":v2", "is not"},
		{"digest key refuses", host + ":v2", pinB, host + ":v2@" + pinA, "the config pins another digest"},
		{"reference's pin refuses", host + "@" + pinB, "", host + "@" + pinA, "the config pins another digest"},
		{"a file", "/images/app.tar.zst", "", host + ":v2@" + pinA, "but the config's image is /images/app.tar.zst"},
	}
	for _, tc := range tests {
		gen := &generation{genMeta: genMeta{Source: "/etc/berth.toml",
			Images: map[string]genImage{"app": {Digest: digestA, Ref: tc.ref}}}, Config: config(tc.image, tc.digest)}
		cfg, err := gen.parse()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && (cfg.Container[0].Image != tc.ref || cfg.Container[0].Digest != tc.digest):
			t.Errorf("%s: runs %s (digest %q), want %s (digest %q)", tc.name, cfg.Container[0].Image, cfg.Container[0].Digest, tc.ref, tc.digest)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestSelectGenerationDamagedCommitted boots on a store whose committed
// generation cannot be read (its config emptied) but whose previous one
// can: the previous one is booted, as recorded, and kept; the record
// says why. Before, every generation was deleted and the boot config
// file booted as generation 1. With the record damaged too, the two
// marked generations become the committed and the previous one.
func TestSelectGenerationDamagedCommitted(t *testing.T) {
	for _, damagedRecord := range []bool{false, true} {
		state := t.TempDir()
		g, err := openGenStore(state)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{2, 3} {
			gen := &generation{genMeta: genMeta{Number: n, Source: "/etc/gen" + strconv.Itoa(n) + ".toml", Images: map[string]genImage{}}, Config: []byte(genTestConfig)}
			if err := g.writeGeneration(gen); err != nil {
				t.Fatal(err)
			}
			g.markCommitted(n)
		}
		bootCfg := filepath.Join(t.TempDir(), "berth.toml")
		writeT(t, bootCfg, genTestConfig)
		if damagedRecord {
			writeT(t, filepath.Join(g.dir, "current"), "{")
			g.markCommitted(1) // a mark on nothing: skipped
		} else {
			if err := g.writeRecord(genRecord{Committed: 3, Previous: 2, Base: configDigest([]byte(genTestConfig))}); err != nil {
				t.Fatal(err)
			}
			writeT(t, filepath.Join(g.dir, "3", "config.toml"), "")
		}
		var log strings.Builder
		b := bootGeneration(t, state, bootCfg, &log)
		b.log.Flush(5 * time.Second)
		r, _, err := g.readRecord()
		want := genRecord{Committed: 2, Previous: 0}
		if damagedRecord {
			want = genRecord{Committed: 3, Previous: 2}
		}
		if err != nil || r.Committed != want.Committed || r.Previous != want.Previous || !r.Hold {
			t.Errorf("damaged record %v: record %+v, %v; want committed %d, previous %d, held\n%s", damagedRecord, r, err, want.Committed, want.Previous, log.String())
		}
		if b.cfg.path != "/etc/gen"+strconv.Itoa(want.Committed)+".toml" || b.gens.first {
			t.Errorf("damaged record %v: booting %s (first %v)\n%s", damagedRecord, b.cfg.path, b.gens.first, log.String())
		}
		if _, _, err := g.readGeneration(2); err != nil {
			t.Errorf("damaged record %v: generation 2 is gone: %v", damagedRecord, err)
		}
		if !damagedRecord && (r.LastRollback == nil || r.LastRollback.From != 3 || r.LastRollback.To != 2) {
			t.Errorf("the record does not say why: %+v", r.LastRollback)
		}
	}
}

// TestRollbackReasonCut: a rollback's reason too long or not valid UTF-8
// (a path in an error) is kept as a record berth reads back: cut at a
// character's start within maxReasonLen, invalid bytes replaced. Cut at
// a byte count, "é"s or a 0xff became U+FFFD in the JSON, longer than
// the record's check allows, and the next boot fell back.
func TestRollbackReasonCut(t *testing.T) {
	for _, tc := range []struct{ name, reason string }{
		{"ascii at the limit", strings.Repeat("x", maxReasonLen)},
		{"ascii past it", strings.Repeat("x", maxReasonLen+1)},
		{"two-byte characters across the limit", "a" + strings.Repeat("é", 600)},
		{"invalid bytes", strings.Repeat("\xff", 600)},
		{"invalid byte at the limit", strings.Repeat("x", maxReasonLen-1) + "\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestStore(t)
			if err := g.writeRecord(genRecord{Committed: 1, LastRollback: &Rollback{From: 2, To: 1, Reason: tc.reason}}); err != nil {
				t.Fatal(err)
			}
			r, ok, err := g.readRecord()
			if err != nil || !ok || r.LastRollback == nil {
				t.Fatalf("read back: %+v %v %v", r, ok, err)
			}
			got := r.LastRollback.Reason
			if len(got) > maxReasonLen || !utf8.ValidString(got) || got == "" {
				t.Fatalf("reason read back: %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
			if utf8.ValidString(tc.reason) && !strings.HasPrefix(tc.reason, got) {
				t.Errorf("a valid reason was not cut to a prefix of itself")
			}
		})
	}
}

// TestGenStoreNestedLeftover: a leftover generation directory that holds
// directories (planted: berth writes files only) is removed before its
// number is written, a symlink in it removed, not followed. (How deep a
// removal goes is image.RemoveAllAt's, tested there.)
func TestGenStoreNestedLeftover(t *testing.T) {
	g := newTestStore(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o600)
	p := filepath.Join(g.dir, "3")
	for range 20 {
		p = filepath.Join(p, "d")
	}
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p, "f"), []byte("x"), 0o600)
	os.Symlink(outside, filepath.Join(p, "link"))
	gen := &generation{genMeta: genMeta{Number: 3, Source: "/etc/berth.toml", Images: map[string]genImage{"web": {Digest: digestA}}}, Config: []byte(genTestConfig)}
	if err := g.writeGeneration(gen); err != nil {
		t.Fatalf("write over a leftover 21 levels deep: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("a symlink in the leftover was followed: %v", err)
	}
	if _, _, err := g.readGeneration(3); err != nil {
		t.Errorf("generation 3 after the write: %v", err)
	}
}

// TestNextNumber: the next generation is above every one the record
// names; a planted number at the end of the range is passed over for the
// committed and previous ones, so updates go on.
func TestNextNumber(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  genRecord
		want int
	}{
		{"first", genRecord{Committed: 1}, 2},
		{"after a try", genRecord{Committed: 2, Previous: 1, Trying: 3}, 4},
		{"after a rollback", genRecord{Committed: 2, Previous: 1, LastRollback: &Rollback{From: 5, To: 2}}, 6},
		{"just under the end", genRecord{Committed: 2, Trying: maxGeneration - 1}, maxGeneration},
		{"planted at the end", genRecord{Committed: 2, Previous: 1, Trying: maxGeneration}, 3},
		{"planted in the rollback", genRecord{Committed: 7, Previous: 9, LastRollback: &Rollback{From: maxGeneration, To: 7}}, 10},
	} {
		if got := tc.rec.nextNumber(); got != tc.want {
			t.Errorf("%s: nextNumber of %+v = %d, want %d", tc.name, tc.rec, got, tc.want)
		}
	}
}
