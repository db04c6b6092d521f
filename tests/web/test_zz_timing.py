import time
from tests.web.console_fixtures import World, claim, ready_claimant, signed_in_agent, w, world, calls_of
__all__ = ["w", "world"]

async def test_timing(w: World) -> None:
    t = time.perf_counter()
    def lap(label):
        nonlocal t
        now = time.perf_counter(); print(f"{label}: {now - t:.2f}s"); t = now
    user_id = await ready_claimant(w); lap("ready_claimant")
    agent = await signed_in_agent(w); lap("signed_in_agent")
    r = await agent.post("/console/state", {"state": "ready"}); lap("ready")
    r = await agent.post("/console/next"); lap("next")
    r = await agent.post(f"/console/claimants/{user_id}/call"); lap("call")
    [call] = await calls_of(w, user_id)
    r = await agent.post(f"/console/calls/{call.id}/simulate", {"action": "answer"}); lap("answer")
    r = await agent.post(f"/console/calls/{call.id}/simulate", {"action": "hangup"}); lap("hangup")
    r = await agent.post(f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"}); lap("outcome")
    user_id = await ready_claimant(w); lap("ready_claimant 2")
