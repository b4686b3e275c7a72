-- sysbench script of the cold GET figure's limit (bench/get_bench.py): the API's product query
-- (same columns, same table, one row by primary key) for a random sku among --skus skus named
-- <--sku-prefix>-0000000 .., one prepared statement per client thread.
sysbench.cmdline.options = {
  ["sku-prefix"] = {"prefix of the skus the bench loaded", ""},
  skus = {"number of skus the bench loaded", 100000},
}

local SQL = "SELECT sku, vendor_id, name, description, category, attributes, currency, status, " ..
  "version FROM products WHERE sku = ?"

function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
  stmt = con:prepare(SQL)
  param = stmt:bind_create(sysbench.sql.type.VARCHAR, 64)
  stmt:bind_param(param)
end

function event()
  param:set(string.format("%s-%07d", sysbench.opt["sku-prefix"], sysbench.rand.uniform(0, sysbench.opt.skus - 1)))
  stmt:execute()
end

function thread_done()
  stmt:close()
  con:disconnect()
end
