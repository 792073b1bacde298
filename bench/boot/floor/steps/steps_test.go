package steps

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"

	"berth/container"
	"berth/internal/testutil"
)

// TestDemoConfig: the floors start the demo's first container, so their
// constants are its values in demo/berth.toml, which make demo boots.
func TestDemoConfig(t *testing.T) {
	var cfg struct {
		Container []struct {
			Name    string
			Image   string
			Command []string
			Env     []string
			Limits  struct {
				Memory string
				Pids   int64
			}
		}
	}
	if _, err := toml.DecodeFile(filepath.Join(testutil.RepoRoot(), "demo", "berth.toml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Container) == 0 {
		t.Fatal("demo/berth.toml has no container")
	}
	c := cfg.Container[0]
	memory, err := container.ParseSize(c.Limits.Memory)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != Name || c.Image != Image || !slices.Equal(c.Command, Command) || !slices.Equal(c.Env, Env) ||
		memory != Memory || c.Limits.Pids != Pids {
		t.Errorf("demo/berth.toml's first container is %q %q %q %q, memory %d, pids %d; the floors start %q %q %q %q, memory %d, pids %d",
			c.Name, c.Image, c.Command, c.Env, memory, c.Limits.Pids, Name, Image, Command, Env, Memory, Pids)
	}
}
