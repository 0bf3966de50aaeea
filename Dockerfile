# syntax=docker/dockerfile:1
#
# The image of every wisp service; SERVICE says which (gateway, rooms,
# messages or expiry). Build from the repository root, which is the context:
#
#   docker build --build-arg SERVICE=gateway -t wisp/gateway .
#
# docker-compose.yml builds each service from here with its own SERVICE.

FROM golang:1.26 AS build
ARG SERVICE

# GOWORK=off builds with the service's own go.mod and go.sum, whose replace
# directives point at ../../contract and ../../platform: the binary gets
# exactly the versions its module pins. Under go.work every module in the
# workspace (deploy's Kubernetes and compose libraries, stack, bench) would
# join version selection and need copying too, for code this binary never
# links.
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly
WORKDIR /src

# Module files first: the download layer is reused until they change.
# testkit is named by a replace directive (the service's tests use it), so
# Go reads its go.mod; none of its code is copied or linked.
COPY contract/go.mod contract/
COPY platform/go.mod platform/go.sum platform/
COPY testkit/go.mod testkit/go.sum testkit/
COPY services/${SERVICE}/go.mod services/${SERVICE}/go.sum services/${SERVICE}/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd services/${SERVICE} && go mod download

COPY contract/ contract/
COPY platform/ platform/
COPY services/${SERVICE}/ services/${SERVICE}/
# The service, and the probe binary (distroless has no shell or curl for a
# HEALTHCHECK), built in the service's module: platform is one of its
# dependencies already, so nothing else is downloaded.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd services/${SERVICE} && go build -trimpath -ldflags="-s -w" -o /out/service ./cmd/${SERVICE}
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd services/${SERVICE} && go build -trimpath -ldflags="-s -w" -o /out/healthcheck wisp/platform/cmd/healthcheck

# Static binaries need no libc: distroless static has CA certificates,
# tzdata and a nonroot user, and no shell, package manager or toolchain.
FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
LABEL org.opencontainers.image.title="wisp-${SERVICE}"
COPY --from=build /out/service /out/healthcheck /
# Numeric, so Kubernetes' runAsNonRoot can verify it (65532 is "nonroot").
USER 65532:65532
# 9090: /livez, /readyz, /metrics, on every service. The gateway also
# serves HTTP and WebSocket on HTTP_ADDR (:3000), which docker-compose.yml
# and the Kubernetes manifests declare.
EXPOSE 9090
# Readiness, not liveness: compose's depends_on waits for Redis and NATS to
# be usable, and a draining replica reports unhealthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/healthcheck"]
# Exec form, so SIGTERM reaches the service (exec form expands no
# variables, hence the fixed name).
ENTRYPOINT ["/service"]
