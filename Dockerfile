# ---- build ----------------------------------------------------------------
FROM golang:1.26-bookworm AS build

WORKDIR /src

# Module downloads get their own layer: it is rebuilt only when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .

ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tally ./cmd/tally

# ---- runtime --------------------------------------------------------------
# distroless: no shell, no curl; runs as uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/tally /usr/local/bin/tally

ENV TALLY_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080

# The binary probes its own GET /healthz (port taken from TALLY_HTTP_ADDR) and exits 0/1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/tally", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/tally"]
CMD ["serve"]
