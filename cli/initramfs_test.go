package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestInitramfsVerb writes an appliance's boot artifact as a user would —
// from a config beside its image, twice, to the same bytes — says what
// went in, and refuses with a clear message and status 1 a config that
// names a file outside its directory or a missing one, and berth for an
// architecture it has no binary of; a misuse is status 2.
func TestInitramfsVerb(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "appliance.toml")
	write(t, config, "[[container]]\nname = \"web\"\nimage = \"images/app.tar.zst\"\ncommand = [\"true\"]\n")
	write(t, filepath.Join(dir, "images/app.tar.zst"), "image bytes")
	var outs [][]byte
	for _, name := range []string{"one", "two"} {
		out := filepath.Join(dir, name+".cpio.zst")
		status, stdout, stderr := berth(t, "initramfs", "--config", config, "-o", out)
		if status != 0 {
			t.Fatalf("status %d: %s", status, stderr)
		}
		for _, w := range []string{"/init <- " + berthBin, "/etc/berth.toml <- " + config,
			"/etc/images/app.tar.zst <- " + filepath.Join(dir, "images/app.tar.zst") + " (container.web.image)",
			"wrote " + out + ": ", "a zstd-compressed newc cpio for " + runtime.GOARCH} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
		if !strings.Contains(stderr, "note: no modules directory: the initramfs holds no kernel modules") {
			t.Errorf("stderr: %s", stderr)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, data)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two runs wrote different bytes")
	}

	outside := filepath.Join(dir, "outside.toml")
	write(t, filepath.Join(dir, "sub/outside.toml"), "[[container]]\nname = \"web\"\nimage = \"../images/app.tar.zst\"\ncommand = [\"true\"]\n")
	missing := filepath.Join(dir, "missing.toml")
	write(t, missing, "[[container]]\nname = \"web\"\nimage = \"images/none.tar.zst\"\ncommand = [\"true\"]\n")
	other := "riscv64"
	tests := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"--config", filepath.Join(dir, "sub/outside.toml")}, 1,
			"container.web.image ../images/app.tar.zst: outside the config's directory " + filepath.Join(dir, "sub")},
		{[]string{"--config", missing}, 1, "container.web.image images/none.tar.zst: " + filepath.Join(dir, "images/none.tar.zst") + ": no such file"},
		{[]string{"--config", outside}, 1, "outside.toml"},
		{[]string{"--config", config, "--arch", other}, 1, "no " + filepath.Join(filepath.Dir(berthBin), "berth-linux-"+other) + " beside this berth"},
		{[]string{"--config", config, "--arch", "mips"}, 2, `--arch "mips": want one of amd64, arm64, arm, riscv64`},
		{[]string{"--config", config, "--file", "images/x=y"}, 2, `--file "images/x=y": want PATH=FILE, PATH absolute`},
		{[]string{"--config", config}, 2, "--config and -o are required"},
	}
	for _, tc := range tests {
		args := append([]string{"initramfs"}, tc.args...)
		if tc.status == 1 || !strings.Contains(tc.want, "-o are required") {
			args = append(args, "-o", filepath.Join(dir, "bad.cpio.zst"))
		}
		status, _, stderr := berth(t, args...)
		if status != tc.status || !strings.Contains(stderr, tc.want) {
			t.Errorf("berth %v: status %d, stderr %q; want %d and %q", args, status, stderr, tc.status, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.cpio.zst")); err == nil {
		t.Error("a failed build left its output")
	}
}
