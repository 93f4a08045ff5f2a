import uuid, asyncpg, pytest
@pytest.fixture(scope="session")
def kafka_bootstrap(): return "127.0.0.1:29092"
@pytest.fixture
def make_database():
    async def make():
        name = "t_" + uuid.uuid4().hex[:12]
        c = await asyncpg.connect("postgresql://postgres@127.0.0.1:25432/postgres")
        await c.execute(f'CREATE DATABASE "{name}"'); await c.close()
        return f"postgresql+asyncpg://postgres@127.0.0.1:25432/{name}"
    return make
