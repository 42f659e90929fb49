# nlpd in a container: Debian 12, built and installed by the project's own `make install`,
# run as the unprivileged user nlpd. Not built by the tests (docs/deploy.md, "Docker").
#
#   docker build -t nlpd .
#   docker run -d --name nlpd -p 5555:5555 \
#       -v /srv/models:/var/lib/nlpd/models:ro \
#       -v /srv/nlpd-keys:/etc/nlpd/keys:ro nlpd
#
# The image holds no model: mount one at /var/lib/nlpd/models/flan-t5-small (or give
# --model). nlpd refuses a non-loopback tcp:// bind without CurveZMQ keys; the image's
# config (/etc/nlpd/nlpd.conf, from `make install`, plus docker.conf below) expects
# them in /etc/nlpd/keys: nlpd-server_secret and the clients' public certificates in
# /etc/nlpd/keys/clients (nlpd --make-keypair PREFIX writes a pair).

# ---- build ----
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config protobuf-c-compiler protobuf-compiler \
        libzmq3-dev libprotobuf-c-dev libopenblas-dev libopenblas-openmp-dev libconfig-dev \
        libcjson-dev libmicrohttpd-dev libhiredis-dev libsystemd-dev python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only what `make install` needs (not the tests, benchmarks or fuzzers).
RUN make -j"$(nproc)" B=/build DESTDIR=/out PREFIX=/usr/local install

# ---- run ----
FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libzmq5 libprotobuf-c1 libconfig9 libcjson1 libopenblas0-openmp libgomp1 \
        libhiredis0.14 libmicrohttpd12 libsystemd0 python3 python3-zmq python3-protobuf \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/nlpd --shell /usr/sbin/nologin nlpd \
    && mkdir -p /var/lib/nlpd/models /run/nlpd /etc/nlpd/keys/clients \
    && chown nlpd:nlpd /run/nlpd
COPY --from=build /out/ /
# Listen on every interface of the container, behind CurveZMQ (docs/deploy.md): the
# installed config with another bind list and a security group, as /etc/nlpd/docker.conf.
RUN sed -e 's|^bind = .*|bind = [ "tcp://0.0.0.0:5555", "ipc:///run/nlpd/nlpd.sock" ];|' \
        /etc/nlpd/nlpd.conf > /etc/nlpd/docker.conf \
    && printf '%s\n' '' \
        'security = { curve_secret_key_file = "keys/nlpd-server_secret";' \
        '             curve_allowed_keys_dir = "keys/clients"; };' >> /etc/nlpd/docker.conf \
    && grep -q 'tcp://0.0.0.0:5555' /etc/nlpd/docker.conf \
    && ldconfig
USER nlpd
WORKDIR /var/lib/nlpd
EXPOSE 5555
# SIGTERM (docker stop) drains: everything accepted is answered, then exit 0; give it
# time: docker stop -t 60. No HEALTHCHECK: every endpoint is behind CurveZMQ, so a probe
# needs a client key (docs/deploy.md shows one).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/sbin/nlpd"]
CMD ["-c", "/etc/nlpd/docker.conf"]
