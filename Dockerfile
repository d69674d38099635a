# lethe as a static binary on an empty base image.
#   docker build -t ghcr.io/lethe-privacy/lethe:latest --build-arg VERSION=$(git describe --always) .
# The final stage is `scratch`: nothing is pulled for it, and the image holds
# only the binary, the CA certificates (for TLS to PostgreSQL, webhooks and
# processors) and an empty /data owned by the unprivileged user.
# deploy/kubernetes.yaml runs this image.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: the SQLite driver (modernc.org/sqlite) is pure Go, so the
# binary needs no libc and runs on scratch.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/lethe ./cmd/lethe \
 && mkdir -p /out/data /out/tmp && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/lethe /lethe
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build /out/tmp /tmp
USER 65532:65532
WORKDIR /data
# The kubernetes example sets LETHE_LISTEN per role; this is the default for
# `docker run`: reachable through a published port.
ENV LETHE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/lethe"]
CMD ["serve"]
