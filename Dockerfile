# syntax=docker/dockerfile:1
# keyward: a static binary on a distroless non-root base.
#
#   docker build -t keyward .                     # the runnable image
#   docker build --target binary -t keyward:bin . # only /keyward, for COPY --from
#
# Application images take the binary with:
#   COPY --from=keyward:bin /keyward /usr/local/bin/keyward
#   ENTRYPOINT ["keyward", "exec", "-c", "/etc/keyward/keyward.yaml", "--"]

ARG GO_VERSION=1.26
# The runtime base; override to use a mirror.
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Version stamps, as `make build` sets them: --build-arg VERSION=v1.2.3
# --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=<commit date, RFC 3339>.
ARG VERSION=""
ARG COMMIT=""
ARG DATE=""
# TAGS leaves providers out, e.g. --build-arg TAGS="no_vault no_gcpsm no_k8s".
ARG TAGS=""
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -tags "${TAGS}" \
      -ldflags "-s -w -X github.com/keyward/keyward/internal/version.Version=${VERSION} -X github.com/keyward/keyward/internal/version.Commit=${COMMIT} -X github.com/keyward/keyward/internal/version.Date=${DATE}" \
      -o /out/keyward ./cmd/keyward

# binary: nothing but the executable, for `COPY --from` into application images.
FROM scratch AS binary
COPY --from=build /out/keyward /keyward

# default target: keyward as a non-root container (init, sidecar, exec wrapper).
FROM ${BASE_IMAGE}
COPY --from=build /out/keyward /usr/local/bin/keyward
USER nonroot:nonroot
ENTRYPOINT ["keyward"]
CMD ["--help"]
