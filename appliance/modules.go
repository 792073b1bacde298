package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"berth/board"
	"berth/boot"
)

// modulesFor lists the kernel modules an appliance of arch with config cfg
// loads. Required are the config's [board] modules: a kernel without one
// is an error. Optional are those of the board profiles for arch (berth
// loads the detected board's) and what the config's features need — the
// NIC drivers of those profiles when it configures a network interface,
// their disk drivers and the filesystem when it has [storage], the bridge
// network's modules when a container has net = "bridge" — which a kernel
// may have built in or lack.
func modulesFor(cfg *boot.Config, arch string) (required, optional []string) {
	required = cfg.Board.Modules
	for _, p := range board.Profiles {
		if !p.ForArch(arch) {
			continue
		}
		optional = append(optional, p.Modules...)
		if len(cfg.Network.Interface) > 0 {
			optional = append(optional, p.NICs...)
		}
		if cfg.Storage != nil {
			optional = append(optional, p.Disks...)
		}
	}
	if cfg.Storage != nil {
		optional = append(optional, cfg.Storage.FileSystem())
	}
	for _, c := range cfg.Container {
		if c.Net == "bridge" {
			optional = append(optional, board.NetModules...)
			break
		}
	}
	return required, optional
}

// addModules adds the modules the appliance loads, from Spec.ModulesDir.
func (b *Built) addModules(spec Spec, cfg *boot.Config) error {
	required, optional := modulesFor(cfg, spec.Arch)
	if spec.Modules != nil {
		required, optional = spec.Modules, nil
	}
	if spec.ModulesDir == "" {
		if all := append(append([]string(nil), required...), optional...); len(all) > 0 {
			b.Notes = append(b.Notes, "no modules directory: the initramfs holds no kernel modules, and berth would load "+
				strings.Join(dedup(all), " "))
		}
		return nil
	}
	set, err := board.OpenModuleSet(spec.ModulesDir, spec.Arch)
	if err != nil {
		return err
	}
	for _, m := range required {
		if err := set.Add(m); err != nil {
			return fmt.Errorf("%s: board.modules: %w", spec.Config, err)
		}
	}
	for _, m := range dedup(optional) {
		err := set.Add(m)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			b.Notes = append(b.Notes, fmt.Sprintf("%v: left out", err))
		case err != nil:
			return err
		}
	}
	b.Modules = set
	return b.AddModules(set)
}

// dedup drops repeated names, keeping the first of each.
func dedup(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
