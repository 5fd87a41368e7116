# The keeper's runtime image: the keeper wheel (keeper/ with its ABIs and chain presets) and its
# PyPI dependencies on python:3.11-slim, run as a non-root user. No devnet, no node tools, no tests.
#   docker build -t keeper .
#   docker run --rm keeper --version
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" -w /work keeper init --chain base --out keeper.toml
#   docker run --rm -e KEEPER_PRIVATE_KEY -v "$PWD/keeper.toml:/home/keeper/keeper.toml:ro" keeper run --config keeper.toml
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY keeper ./keeper
COPY abis ./abis
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin keeper
USER keeper
WORKDIR /home/keeper
ENTRYPOINT ["keeper"]
CMD ["--help"]
