# syntax=docker/dockerfile:1
# fedmesh: the static binaries fedmesh and fedmesh-proxy (the lean sidecar
# and gateway) in a distroless image (target "fedmesh", the default), the
# data plane alone (target "fedmesh-proxy"), and the iptables init
# container (target "fedmesh-init"). Both images keep fedmesh-proxy at
# /usr/local/bin/fedmesh-proxy, which injected sidecars run.
#
#   docker build -t fedmesh:dev .
#   docker build --target fedmesh-proxy -t fedmesh-proxy:dev .
#   docker build --target fedmesh-init -t fedmesh-init:dev .

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -tags grpcnotrace \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/ ./cmd/fedmesh ./cmd/fedmesh-proxy

# The init container only installs the capture rules (nft, or iptables and
# ip6tables: docs/capture.md); it is the one image that needs a shell and
# root (with NET_ADMIN, for the pod's network namespace only).
FROM alpine:3.22 AS fedmesh-init
RUN apk add --no-cache iptables nftables
USER 0
ENTRYPOINT ["sh"]

FROM gcr.io/distroless/static-debian12:nonroot AS fedmesh-proxy
COPY --from=build /out/fedmesh-proxy /usr/local/bin/fedmesh-proxy
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fedmesh-proxy"]

FROM gcr.io/distroless/static-debian12:nonroot AS fedmesh
COPY --from=build /out/fedmesh /out/fedmesh-proxy /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fedmesh"]
