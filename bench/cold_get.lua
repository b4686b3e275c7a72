-- wrk script of the cold GET figure (bench/get_bench.py): GET /v1/products/{sku} of a random sku
-- among BENCH_SKUS skus named BENCH_SKU_PREFIX-0000000 .. (the ones the bench loaded).
local prefix = os.getenv("BENCH_SKU_PREFIX")
local n = tonumber(os.getenv("BENCH_SKUS"))
local seeded = 0

function setup(thread)
  seeded = seeded + 1
  thread:set("seed", seeded)
end

function init(args)
  math.randomseed(os.time() * 1000 + seed)
end

function request()
  return wrk.format("GET", string.format("/v1/products/%s-%07d", prefix, math.random(0, n - 1)))
end
