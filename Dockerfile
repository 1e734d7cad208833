# syntax=docker/dockerfile:1
# fedmesh: one static binary in a distroless image (target "fedmesh", the
# default), and the iptables init container (target "fedmesh-init").
#
#   docker build -t fedmesh:dev .
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
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/fedmesh ./cmd/fedmesh

# The init container only runs iptables; it is the one image that needs a
# shell and root (with NET_ADMIN, for the pod's network namespace only).
FROM alpine:3.22 AS fedmesh-init
RUN apk add --no-cache iptables
USER 0
ENTRYPOINT ["sh"]

FROM gcr.io/distroless/static-debian12:nonroot AS fedmesh
COPY --from=build /out/fedmesh /usr/local/bin/fedmesh
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fedmesh"]
