# Entry points for people and CI. `make run` and `make test` install what the machine lacks
# (scripts/install-deps.sh), configure with CMake and build; see README.md.

JOBS ?= 2
BUILD_DIR ?= build-release
TEST_DIR ?= build-test
SANITIZE_DIR ?= build-sanitize
CMAKE_FLAGS ?=
# The interpreter whose packages hold scikit-image and PyTorch (Debian's: python3-skimage,
# python3-torch).
PYTHON ?= python3

.PHONY: run test build deps bench clean

# The main job: the daemon on port 8080 (CUDA backend where a device answers, else the CPU).
LISTEN ?= 0.0.0.0:8080

run: build
	$(BUILD_DIR)/server/ssimd --listen $(LISTEN)

deps:
	scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Warnings as errors, then the same tests again under AddressSanitizer and UBSan.
# protect_shadow_gap=0 lets the CUDA driver map memory where ASan would reserve its shadow gap;
# it changes nothing where there is no GPU.
test: deps
	cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Release -DSSIM_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(TEST_DIR) -j $(JOBS)
	cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS)
	cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSIM_WERROR=ON \
	  -DSSIM_SANITIZE=address,undefined -DSSIM_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	cd $(SANITIZE_DIR) && ASAN_OPTIONS=protect_shadow_gap=0 ctest --output-on-failure -j $(JOBS)

# The CPU engine benchmark against scikit-image and PyTorch (needs python3-skimage and
# python3-torch; see docs/benchmarks.md).
bench: build
	$(BUILD_DIR)/bench/engine/bench_cpu_engine --peers bench/engine/peers.py --python $(PYTHON)

clean:
	rm -rf $(BUILD_DIR) $(TEST_DIR) $(SANITIZE_DIR)
