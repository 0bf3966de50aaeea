// Package deploy holds no code that ships: it is the home of wisp's
// deployment files (Kubernetes manifests under base/ and overlays/, the
// compose proxy under compose/) and of the tests that fail when those files,
// the repository's Dockerfile and docker-compose.yml drift from the code they
// deploy.
package deploy
