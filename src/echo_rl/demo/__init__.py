"""``echo-rl demo``: the main job — a tiny end-to-end reproduction of ECHO on a laptop CPU (issue 8).

    report = echo_rl.demo.pipeline.run(("run.train.steps=40",), Path("runs/demo"))

See :mod:`echo_rl.demo.pipeline` for the stages and :data:`echo_rl.demo.config.DEFAULT_CONFIG` for the default config.
"""
