"""Where demonstrations come from; each source writes the NPZ schema of :mod:`dynaflow.data.schema`.

* :mod:`~dynaflow.data.sources.gaits` — the scripted gait library (trot, pace, bound, pronk, stand), MuJoCo C;
* :mod:`~dynaflow.data.sources.kinematic` — kinematic (infeasible) demonstrations made from gait episodes;
* :mod:`~dynaflow.data.sources.synthetic` — small periodic conditioned motions (quick start);
* :mod:`~dynaflow.data.sources.teacher` — a Brax PPO joystick policy in MJX, trained and collected.
"""
