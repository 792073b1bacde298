package image

import "fmt"

// Digest returns the digest of the image at src, "sha256:" and 64 hex
// digits:
//
//   - for a file (a berth image, .tar.zst, .tar.gz or .tar): the sha256 of
//     its bytes, read through a mapping, so `sha256sum` gives the same;
//   - for an OCI image layout (a directory, or a tar of one): the digest
//     of the manifest picked by platform (and by ":REF" when the layout
//     holds several images), as registries and `skopeo inspect` name it;
//     the manifest names the config and every layer by digest, so it pins
//     the whole image;
//   - for a docker save archive without an OCI index: the image ID, the
//     sha256 of its config, which names every layer by its diff ID.
//
// Cache.Prepare keys its cache by this digest.
func Digest(src, platform string) (string, error) {
	in, err := openInput(src, platform, Limits{}.withDefaults())
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", src, err)
	}
	defer in.close()
	return in.computeDigest()
}

// CheckDigest reports whether d is a digest Prepare and Unpack accept:
// "sha256:" and 64 lowercase hex digits.
func CheckDigest(d string) error { return checkDigestSyntax(d) }
