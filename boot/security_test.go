package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadPolicy checks a policy goes whole, in one write, to the
// kernel's interface (a file here), and that a policy past the size
// limit or a module the kernel does not run is an error naming it.
func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	iface := filepath.Join(dir, "load")
	data := strings.Repeat("p", 3<<20)
	if err := os.WriteFile(policy, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(iface, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := loadPolicy(policy, iface); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(iface); string(got) != data {
		t.Errorf("the interface got %d bytes, want %d", len(got), len(data))
	}
	if err := loadPolicy(policy, filepath.Join(dir, "apparmor", ".replace")); err == nil || !strings.Contains(err.Error(), "does not run this module") {
		t.Errorf("missing interface: %v", err)
	}
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxPolicySize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := loadPolicy(big, iface); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("policy past the limit: %v", err)
	}
	if err := os.Truncate(big, maxPolicySize); err != nil {
		t.Fatal(err)
	}
	if err := loadPolicy(big, iface); err != nil {
		t.Errorf("policy at the limit: %v", err)
	}
}

// TestSecurityConfigEdges checks [security] at its limits and just past.
func TestSecurityConfigEdges(t *testing.T) {
	files := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(`"/etc/apparmor/p` + strings.Repeat("x", i%3) + `",`)
		}
		return "[security]\napparmor_policy = [" + b.String() + "]\n"
	}
	for _, tc := range []struct {
		name, config, want string
	}{
		{"64 policy files", files(maxAppArmorPolicies), ""},
		{"65 policy files", files(maxAppArmorPolicies + 1), "security.apparmor_policy: 65 files: at most 64"},
		{"relative policy", "[security]\nselinux_policy = \"selinux/policy.33\"\n", ""},
		{"policy is a directory", "[security]\nselinux_policy = \"/\"\n", "security.selinux_policy: want the path"},
		{"policy with newline", "[security]\nselinux_policy = \"/etc/p\\n\"\n", "security.selinux_policy: want the path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("f.toml", []byte(tc.config))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
