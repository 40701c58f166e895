# Faultline's image: one static binary on distroless/static, running as the
# nonroot user (65532). Built by `make image`; the binary is built by
# `make build`, the same command as outside the image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN make build VERSION=$VERSION COMMIT=$COMMIT

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/faultline /faultline
USER 65532:65532
ENTRYPOINT ["/faultline"]
