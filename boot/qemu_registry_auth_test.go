package boot_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/image/registry"
	"berth/image/registry/registrytest"
	"berth/internal/busybox"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// registryAuthConfig is an appliance whose images come from registries on
// the test host that a guest reaches only with their settings: one over
// TLS from the test's own CA (port %[1]s), one with basic auth, through a
// proxy that cuts the layer's download (port %[2]s), and the same
// basic-auth registry asked without credentials (port %[3]s).
const registryAuthConfig = `
[[network.interface]]
mac = "52:54:00:12:34:56"
dhcp = true

[registries."10.0.2.2:%[1]s"]
ca = "/etc/berth/registry-ca.pem"

[registries."10.0.2.2:%[2]s"]
insecure = true
username = "berth"
password_file = "/etc/berth/registry-password"

[registries."10.0.2.2:%[3]s"]
insecure = true

[[container]]
name = "tls"
image = "docker://10.0.2.2:%[1]s/demo:v1"
oneshot = true
command = ["/bin/sh", "-c", "echo over tls: $(cat /demo/version)"]

[[container]]
name = "auth"
image = "docker://10.0.2.2:%[2]s/demo:big"
oneshot = true
command = ["/bin/sh", "-c", "echo with basic auth: $(cat /demo/version), big is $(wc -c < /demo/big) bytes"]

[[container]]
name = "gzip"
image = "docker://10.0.2.2:%[1]s/foreign:gz"
oneshot = true
command = ["/bin/sh", "-c", "echo docker gzip: $(cat /demo/version), show.sh $(test -e /demo/show.sh && echo present || echo whited out)"]

[[container]]
name = "nocred"
image = "docker://10.0.2.2:%[3]s/demo:big"
oneshot = true
command = ["/bin/sh", "-c", "echo nocred ran"]

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "/demo/auth-admin.sh"]
` + vm.BerthCLIMounts + `
[[container.mount]]
source = "/var/lib/berth/images"
target = "/cache"
readonly = true
`

// registryAuthAdmin waits until the two pulls have run and the one
// without credentials waits, shows berth ps and what the cache holds of
// downloads (nothing partial may be left), and powers off.
const registryAuthAdmin = `#!/bin/sh
until berth ps | grep -q '^tls .*exited' && berth ps | grep -q '^gzip .*exited' && berth ps | grep -q '^auth .*exited' &&
  berth ps | grep -q '^nocred .*waiting for its image (registry 10.0.2.2'; do sleep 0.5; done
echo "== ps"
berth ps
echo "== downloads left: [$(ls -A /cache/.pull 2>/dev/null)]"
echo "== partial files: $(find /cache -name '*.partial' | wc -l)"
echo "== cache entries: $(ls /cache | grep -c '^sha256-')"
berth poweroff
`

// TestQEMURegistryAuth boots an appliance (amd64, cgroup v2) whose images
// come from docker-registry on the test host: over TLS with a CA of the
// test's own (an image berth pushed, and a docker-format image of two gzip
// layers with a whiteout that skopeo pushed), and with basic auth. The
// basic-auth registry is stopped in the middle of the layer's download and
// started again 2 s later: the pull resumes with a range request where it
// broke, the container runs on the whole tree, and the cache keeps no
// partial download. The same registry asked without credentials makes its
// container wait, saying why, and never run.
func TestQEMURegistryAuth(t *testing.T) {
	repo, dir := testutil.RepoRoot(), t.TempDir()
	tlsReg := registrytest.Start(t, registrytest.Options{TLS: true})
	authReg := registrytest.Start(t, registrytest.Options{Basic: true})
	big := make([]byte, 3<<20) // incompressible: the layer is over 3 MiB
	rand.Read(big)
	// Two images, so that neither pull finds the other's in the cache.
	imgs := map[string]string{}
	for _, r := range []struct {
		reg   *registrytest.Registry
		tag   string
		files map[string]string
	}{
		{tlsReg, "v1", map[string]string{"demo/version": "pulled v1\n"}},
		{authReg, "big", map[string]string{"demo/version": "pulled big\n", "demo/big": string(big)}},
	} {
		img := filepath.Join(dir, r.tag+".tar.zst")
		if err := packDemoImage(repo, appliance{arch: "amd64", files: r.files}, filepath.Join(dir, "rootfs-"+r.tag), img); err != nil {
			t.Fatal(err)
		}
		if _, err := registry.Push(context.Background(), img, "docker://"+r.reg.Host+"/demo:"+r.tag, registry.PushOptions{Registries: r.reg.Regs}); err != nil {
			t.Fatalf("push to %s: %v\n%s", r.reg.Host, err, r.reg.Log)
		}
		imgs[r.tag] = registrytest.FileDigest(t, img)
	}
	layer := imgs["big"]
	// A docker-format image of two gzip layers, pushed by skopeo: the demo
	// tree, then a new /demo/version and a whiteout of /demo/show.sh.
	tree := filepath.Join(dir, "rootfs-gz")
	if err := busybox.Rootfs(repo, "amd64", tree, map[string]string{"demo/show.sh": "echo show\n", "demo/version": "base\n"}); err != nil {
		t.Fatal(err)
	}
	top := []registrytest.Entry{{Name: "demo/", Dir: true}, {Name: "demo/version", Data: "pulled gzip\n"}, {Name: "demo/.wh.show.sh"}}
	tlsReg.Skopeo("dir:"+registrytest.WriteDockerDir(t, [][]registrytest.Entry{treeEntries(t, tree), top}), "docker://"+tlsReg.Host+"/foreign:gz")
	proxy := registrytest.StartProxy(t, authReg.Host)
	cut := true
	proxy.Cut = func(head string) int64 { // the first whole download of the layer
		if cut && strings.HasPrefix(head, "GET ") && strings.Contains(head, "/blobs/"+layer) {
			cut = false
			return 1 << 20
		}
		return -1
	}
	restarted := make(chan struct{})
	go func() {
		<-proxy.Cuts
		authReg.Stop()
		time.Sleep(2 * time.Second) // the pull finds nobody there at least once
		authReg.Start()
		close(restarted)
	}()
	ca, err := os.ReadFile(tlsReg.CA)
	if err != nil {
		t.Fatal(err)
	}
	port := func(host string) string { return host[strings.LastIndex(host, ":")+1:] }
	out, err := bootAppliance(t, appliance{
		arch:   "amd64",
		config: fmt.Sprintf(registryAuthConfig, port(tlsReg.Host), port(proxy.Host), port(authReg.Host)),
		files:  map[string]string{"demo/auth-admin.sh": registryAuthAdmin},
		initrd: map[string]string{
			"etc/berth/registry-ca.pem":   string(ca),
			"etc/berth/registry-password": "s3cret\n",
		},
		modules: []string{"overlay", "virtio_pci", "virtio_net"},
		vm:      vm.Config{Net: &vm.UserNet{}},
	})
	if err != nil {
		t.Errorf("QEMU did not exit cleanly: %v", err)
	}
	select {
	case <-restarted:
	default:
		t.Errorf("the layer's download was never cut")
	}
	var ranged []string
	for _, h := range proxy.Heads() {
		if strings.Contains(h, "/blobs/"+layer) && strings.Contains(h, "Range: bytes=") {
			ranged = append(ranged, strings.SplitN(h, "\r\n", 2)[0])
		}
	}
	if len(ranged) == 0 {
		t.Errorf("no range request for the layer after the cut; requests:\n%s", strings.Join(proxy.Heads(), ""))
	}
	short := func(d string) string { return d[:len("sha256:")+12] }
	wantLines(t, out,
		"image docker://10.0.2.2:"+port(tlsReg.Host)+"/demo:v1 for tls: "+short(imgs["v1"])+" unpacked into the cache",
		"image docker://10.0.2.2:"+port(proxy.Host)+"/demo:big for auth: "+short(layer)+" unpacked into the cache",
		"tls | over tls: pulled v1",
		"gzip | docker gzip: pulled gzip, show.sh whited out",
		"auth | with basic auth: pulled big, big is "+strconv.Itoa(len(big))+" bytes",
		"container nocred: waiting for its image (registry 10.0.2.2:"+port(authReg.Host)+": ",
		"set username and password_file",
		"admin | == downloads left: []",
		"admin | == partial files: 0",
		"admin | == cache entries: 4", // three pulled, and the admin's image file
		"berth: power off",
	)
	if strings.Contains(out, "nocred ran") {
		t.Errorf("nocred ran without credentials")
	}
	if t.Failed() {
		t.Logf("console:\n%s\nTLS registry:\n%s\nbasic-auth registry:\n%s", out, tlsReg.Log, authReg.Log)
	}
}

// treeEntries lists a directory's tree as test layer entries.
func treeEntries(t *testing.T, root string) []registrytest.Entry {
	t.Helper()
	var out []registrytest.Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := registrytest.Entry{Name: rel, Mode: int64(info.Mode().Perm())}
		switch {
		case d.IsDir():
			e.Name, e.Dir = rel+"/", true
		case info.Mode()&fs.ModeSymlink != 0:
			e.Link, _ = os.Readlink(p)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Data = string(b)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
