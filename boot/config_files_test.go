package boot

import (
	"slices"
	"testing"
)

// TestConfigFiles lists the files a config names, each once, in the
// order of the file: images, the key each image is checked with, the
// signature (named, or IMAGE.sig), and seccomp profiles given by path;
// an image from a registry is no file, nor is its signature; a registry's
// CA and password file are.
func TestConfigFiles(t *testing.T) {
	const config = `
[images]
public_key = "keys/vendor.pub"

[[container]]
name = "web"
image = "images/web.tar.zst"
command = ["httpd"]
seccomp = "/etc/seccomp/web.json"

[[container]]
name = "job"
image = "images/web.tar.zst"
signature = "sigs/web.sig"
public_key = "/keys/other.pub"
command = ["true"]
seccomp = "unconfined"

[[container]]
name = "layout"
image = "/data/oci/"
command = ["true"]

[[container]]
name = "pulled"
image = "docker://registry.example:5000/app:v1"
command = ["true"]

[registries."registry.example:5000"]
ca = "/etc/berth/fleet-ca.pem"
username = "device"
password_file = "registry.password"

[registries."10.0.0.2:5000"]
insecure = true
`
	cfg, err := ParseConfig("/etc/berth.toml", []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range cfg.Files() {
		got = append(got, r.Key+" "+r.Path)
	}
	want := []string{
		"container.web.image images/web.tar.zst",
		"images.public_key keys/vendor.pub",
		"container.web.image (its signature) images/web.tar.zst.sig",
		"container.web.seccomp /etc/seccomp/web.json",
		"container.job.public_key /keys/other.pub",
		"container.job.signature sigs/web.sig",
		"container.layout.image /data/oci/",
		"container.layout.image (its signature) /data/oci.sig",
		`registries."registry.example:5000".ca /etc/berth/fleet-ca.pem`,
		`registries."registry.example:5000".password_file registry.password`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("files:\n%q\nwant:\n%q", got, want)
	}
	for _, r := range cfg.Files() {
		if (r.SignatureOf != nil) != (r.Key == "container.web.image (its signature)" || r.Key == "container.layout.image (its signature)") {
			t.Errorf("%s: SignatureOf %v", r.Key, r.SignatureOf)
		}
	}
}
