package boot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth/image/registry"
	"berth/image/registry/registrytest"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// registryConfig is an appliance whose containers come from a registry on
// the test host, reached over QEMU's user network as 10.0.2.2:%[1]s: one
// by tag, one by digest (%[2]s), one whose digest pin (%[3]s) the tag
// does not match; local and admin have the image file. %[1]s is the
// registry's port.
const registryConfig = registryBase + `
[[container]]
name = "bytag"
image = "docker://10.0.2.2:%[1]s/demo:v1"
oneshot = true
command = ["/bin/sh", "-c", "echo by tag: $(cat /demo/version)"]

[[container]]
name = "bydigest"
image = "docker://10.0.2.2:%[1]s/demo@%[2]s"
oneshot = true
command = ["/bin/sh", "-c", "echo by digest: $(cat /demo/version)"]

[[container]]
name = "wrongpin"
image = "docker://10.0.2.2:%[1]s/demo:v1"
digest = "%[3]s"
oneshot = true
command = ["/bin/sh", "-c", "echo wrongpin ran"]
`

// registryBase is what every generation of the registry appliance has:
// the network, the registry, local and admin, and svc, a service on
// the registry's demo image at tag v%[4]s, healthy while its image has
// /demo/healthy.
const registryBase = `
[[network.interface]]
mac = "52:54:00:12:34:56"
dhcp = true

[registries."10.0.2.2:%[1]s"]
insecure = true

[update]
grace_period = "1h" # the health check decides

[[container]]
name = "local"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo local up; while :; do sleep 1; done"]

[[container]]
name = "svc"
image = "docker://10.0.2.2:%[1]s/demo:v%[4]s"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo svc runs $(cat /demo/version); while :; do sleep 1; done"]
[container.health]
command = ["test", "-e", "/demo/healthy"]
interval = "300ms"
retries = 2

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "/demo/registry-admin.sh"]
` + vm.BerthCLIMounts

// registryAdminScript shows berth ps while the registry is down (taken
// before the line the test starts the registry on), then once the
// registry's containers have ended; then applies svc's v2, whose check
// passes, and v3, whose check fails.
const registryAdminScript = `#!/bin/sh
until berth ps | grep -q '^bydigest .*waiting for its image (registry 10.0.2.2'; do sleep 0.2; done
ps=$(berth ps)
echo "== ps while the registry is down"
echo "$ps"
until berth ps | grep -q '^bytag .*exited' && berth ps | grep -q '^bydigest .*exited' &&
  berth ps | grep -q '^wrongpin .*failed' && berth ps | grep -Eq '^svc +running +healthy'; do sleep 0.5; done
echo "== ps once it is up"
berth ps
berth apply /etc/berth-v2.toml; echo "apply v2: $?"
berth apply /etc/berth-v3.toml; echo "apply v3: $?"
echo "== after the rollback"
berth ps
berth status | grep generation
berth poweroff
`

// consoleTrigger runs f once, when the console shows marker.
type consoleTrigger struct {
	mu     sync.Mutex
	seen   strings.Builder
	marker string
	f      func()
	done   bool
}

func (c *consoleTrigger) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.seen.Write(p)
		if strings.Contains(c.seen.String(), c.marker) {
			c.done = true
			go c.f()
		}
	}
	return len(p), nil
}

// TestQEMURegistry boots an appliance whose images are partly in a
// registry that is down when it boots (amd64, cgroup v2): the containers
// with image files run, those of the registry wait — berth ps says for
// what, and when they try again — and the test starts the registry once
// the admin container has seen them wait. Then the image pushed with
// berth image push runs by tag and by digest, and the container whose
// digest pin the registry's tag does not match is refused before any
// layer is fetched and never runs. Then berth apply of svc's v2, healthy,
// commits; the apply of v3, whose health check fails, rolls back by
// itself and v2 serves again, from the cache.
func TestQEMURegistry(t *testing.T) {
	repo := testutil.RepoRoot()
	dir := t.TempDir()
	reg := registrytest.Start(t, registrytest.Options{})
	// The registry's images: the demo image with /demo/version, and
	// /demo/healthy but in v3.
	var digest string
	for _, v := range []string{"1", "2", "3"} {
		files := map[string]string{"demo/version": "pulled v" + v + "\n", "demo/healthy": ""}
		if v == "3" {
			delete(files, "demo/healthy")
		}
		img := filepath.Join(dir, "v"+v+".tar.zst")
		if err := packDemoImage(repo, appliance{arch: "amd64", files: files}, filepath.Join(dir, "rootfs"+v), img); err != nil {
			t.Fatal(err)
		}
		d, err := registry.Push(context.Background(), img, "docker://"+reg.Host+"/demo:v"+v, registry.PushOptions{Registries: reg.Regs})
		if err != nil {
			t.Fatalf("push: %v\n%s", err, reg.Log)
		}
		if v == "1" {
			digest = d
		}
	}
	reg.Stop()
	port := strings.TrimPrefix(reg.Host, "127.0.0.1:")
	wrong := "sha256:" + strings.Repeat("0", 63) + "1"
	started := make(chan struct{})
	trigger := &consoleTrigger{marker: "admin | == ps while the registry is down", f: func() {
		reg.Start() // the same port and storage
		close(started)
	}}
	out, err := bootAppliance(t, appliance{
		arch: "amd64", config: fmt.Sprintf(registryConfig, port, digest, wrong, "1"),
		files: map[string]string{"demo/registry-admin.sh": registryAdminScript},
		initrd: map[string]string{
			"etc/berth-v2.toml": fmt.Sprintf(registryBase, port, "", "", "2"),
			"etc/berth-v3.toml": fmt.Sprintf(registryBase, port, "", "", "3"),
		},
		modules: []string{"overlay", "virtio_pci", "virtio_net"},
		vm:      vm.Config{Net: &vm.UserNet{}},
		serial:  trigger,
	})
	if err != nil {
		t.Errorf("QEMU did not exit cleanly: %v", err)
	}
	select {
	case <-started:
	default:
		t.Errorf("the registry was never started: the console did not show the wait")
	}
	ref := "docker://10.0.2.2:" + port + "/demo"
	wantLines(t, out,
		"container bytag: waiting for its image (registry 10.0.2.2:"+port+": ",
		"admin | bydigest ", "waiting (waiting for its image (registry 10.0.2.2:"+port+": ",
		"; retry in ",
		"image "+ref+":v1 for bytag: "+digest[:len("sha256:")+12]+" pulled from 10.0.2.2:"+port,
		"image "+ref+"@"+digest+" for bydigest: "+digest[:len("sha256:")+12]+" pulled from 10.0.2.2:"+port,
		"bytag | by tag: pulled v1",
		"bydigest | by digest: pulled v1",
		"container wrongpin: image: "+ref+":v1: digest mismatch: the registry has "+digest+", the config pins "+wrong+" (nothing fetched)",
		"update: image "+ref+":v2 for svc: ",
		"admin | apply v2: 0",
		"update: image "+ref+":v3 for svc: ",
		"admin | apply v3: 1",
		"the registry is not asked",
		"berth: power off",
	)
	inOrder(t, out, "container local started", "admin | == ps while the registry is down", "admin | local ", "running",
		"admin | == ps once it is up", "admin | wrongpin ", "failed",
		"svc | svc runs pulled v2", "admin | apply v2: 0",
		"svc | svc runs pulled v3", "generation 3 rolled back to generation 2: container svc: is unhealthy", "admin | apply v3: 1",
		"admin | == after the rollback", "admin | svc ", "running", "admin | generation  2 committed, previous 1")
	// The rollback's v2 comes from the cache, and serves again.
	inOrder(t, out, "svc | svc runs pulled v3", "demo:v2@"+"sha256:", "the registry is not asked", "svc | svc runs pulled v2")
	if strings.Contains(out, "wrongpin ran") {
		t.Errorf("wrongpin ran on an image its digest pin refuses")
	}
	if t.Failed() {
		t.Logf("console:\n%s\nregistry:\n%s", out, reg.Log)
	}
}
