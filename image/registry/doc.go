// Package registry is a minimal OCI distribution client: it pulls images
// from registries (the CNCF distribution registry, cloud registries,
// Harbor, zot) into berth's image cache and pushes berth images to them.
//
// References are skopeo's and podman's: docker://HOST[:PORT]/REPO[:TAG]
// [@sha256:HEX], the host always explicit. Pull reads OCI image manifests
// and indexes and docker schema 2 manifests and manifest lists, picks the
// platform as package image does for OCI layouts, checks a pinned digest
// before anything else is fetched, downloads every blob to disk under the
// cache (resuming with range requests), verifies each against its digest,
// checks the signature when asked, and only then lets image.Cache.Prepare
// unpack, all or nothing. Push publishes a berth image as a one-layer OCI
// image whose layer is the file itself.
//
// HTTP is a small HTTP/1.1 client of its own over net and crypto/tls
// (http.go): net/http would add 2.5 MB to the binary.
package registry
