package boot

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"berth/container"
)

// SecurityConfig is the [security] table: policy berth loads into the
// kernel's security modules at boot, as PID 1 (security.go).
type SecurityConfig struct {
	// AppArmorPolicy are compiled AppArmor policy files (apparmor_parser
	// output for the target kernel's feature set), loaded in order.
	AppArmorPolicy []string `toml:"apparmor_policy"`
	// SELinuxPolicy is a compiled SELinux policy (policy.NN).
	SELinuxPolicy string `toml:"selinux_policy"`
}

// Limits of [security]: how many AppArmor policy files, and how large
// each policy file may be (Debian's whole reference policy for SELinux
// is about 5 MiB, an AppArmor profile's a few KiB).
const (
	maxAppArmorPolicies = 64
	maxPolicySize       = 32 << 20
)

func (s SecurityConfig) check(v *validator) {
	if len(s.AppArmorPolicy) > maxAppArmorPolicies {
		v.addKey("security.apparmor_policy", "%d files: at most %d", len(s.AppArmorPolicy), maxAppArmorPolicies)
		return
	}
	for i, p := range s.AppArmorPolicy {
		if !policyPath(p) {
			v.addKey("security.apparmor_policy", "file %d: want the path of a compiled policy file (clean, no \"..\"), got %s", i+1, container.Quote(p))
		}
	}
	if s.SELinuxPolicy != "" && !policyPath(s.SELinuxPolicy) {
		v.addKey("security.selinux_policy", "want the path of a compiled policy file (clean, no \"..\"), got %s", container.Quote(s.SELinuxPolicy))
	}
}

// policyPath reports whether p can name a policy file: absolute or
// relative to the config's directory, clean, without "..", NUL or a
// newline.
func policyPath(p string) bool {
	return p != "" && p != "/" && filepath.Clean(p) == p && len(p) < 4096 &&
		!strings.ContainsAny(p, "\x00\n") && !slices.Contains(strings.Split(p, "/"), "..")
}

// policyFiles are the [security] files as FileRefs.
func (s SecurityConfig) policyFiles() []FileRef {
	var refs []FileRef
	for i, p := range s.AppArmorPolicy {
		refs = append(refs, FileRef{Key: "security.apparmor_policy[" + strconv.Itoa(i) + "]", Path: p})
	}
	if s.SELinuxPolicy != "" {
		refs = append(refs, FileRef{Key: "security.selinux_policy", Path: s.SELinuxPolicy})
	}
	return refs
}
