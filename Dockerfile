# Vitals: one static binary, subcommands select the stage.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/vitals ./cmd/vitals

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vitals /usr/local/bin/vitals
USER nonroot
ENTRYPOINT ["/usr/local/bin/vitals"]
