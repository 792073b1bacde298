package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validConfig = `# demo appliance
hostname = "gateway"

[[container]]
name = "web"
image = "images/web.tar.zst"
command = ["/bin/httpd", "-f"]
env = ["PORT=80"]
[container.limits]
memory = "64M"
pids = 32

[[container]]
name = "sensor"
image = "/images/sensor.tar.zst"
command = [
  "/bin/sh",
  "-c", "echo hi",
]
limits = { memory = "16M" }
`

func TestParseConfigValid(t *testing.T) {
	cfg, err := ParseConfig("/etc/berth.toml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "gateway" || len(cfg.Container) != 2 {
		t.Fatalf("parsed %+v", cfg)
	}
	web := cfg.Container[0].Spec("/rootfs")
	if web.Limits.Memory != 64<<20 || web.Limits.Pids != 32 || web.Args[1] != "-f" {
		t.Errorf("web spec %+v", web)
	}
	if got := cfg.ImagePath(cfg.Container[0]); got != "/etc/images/web.tar.zst" {
		t.Errorf("relative image resolves to %s", got)
	}
	if got := cfg.ImagePath(cfg.Container[1]); got != "/images/sensor.tar.zst" {
		t.Errorf("absolute image resolves to %s", got)
	}
}

// TestParseConfigErrors checks that every error names the file, the line
// and the key.
func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // each must appear in the error text
	}{
		{"syntax error", "hostname = \"x\nfoo", []string{"b.toml:1:"}},
		{"type mismatch", "[[container]]\nname = 5\n", []string{"b.toml:2: container.name:", "incompatible types"}},
		{"unknown top-level key", "hostname = \"a\"\nbogus = 1\n", []string{"b.toml:2: bogus: unknown key"}},
		{"unknown key in second container",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[[container]]\nname=\"b\"\nimage=\"i\"\ncommand=[\"x\"]\n[container.limits]\nmemroy = \"1M\"\n",
			[]string{"b.toml:10: container.limits.memroy: unknown key"}},
		{"unknown key in inline table",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\nlimits = { memory = \"1M\", cpu = 2 }\n",
			[]string{"b.toml:5: container.limits.cpu: unknown key"}},
		{"bad memory size",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n\n[container.limits]\nmemory = \"64Q\"\n",
			[]string{"b.toml:7: container.limits.memory: invalid size \"64Q\""}},
		{"missing command and image",
			"[[container]]\nname=\"a\"\n",
			[]string{"b.toml:1: container: missing image", "b.toml:1: container.command: missing command"}},
		{"duplicate and invalid names",
			"[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[[container]]\nname=\"Bad Name\"\nimage=\"i\"\ncommand=[\"x\"]\n",
			[]string{"b.toml:6: container.name: duplicate container name \"a\"", "b.toml:10: container.name: invalid container name"}},
		{"bad env", "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\nenv=[\"NOEQUALS\"]\n", []string{"b.toml:5: container.env: invalid entry \"NOEQUALS\""}},
		{"negative pids", "[[container]]\nname=\"a\"\nimage=\"i\"\ncommand=[\"x\"]\n[container.limits]\npids = -1\n", []string{"b.toml:6: container.limits.pids:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("b.toml", []byte(tc.toml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, maxConfigSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "big.toml") {
		t.Errorf("oversized config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing config: %v", err)
	}
}
