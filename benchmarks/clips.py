"""Check a robot profile against real clips, and what retargeting does to them.

    python benchmarks/clips.py --robot laikago path/to/dog_trot.txt path/to/dog_pace.txt
    python benchmarks/clips.py --robot a1 path/to/AMP_for_hardware/datasets/mocap_motions/*.txt

For each clip (fetched by you; the project ships none), retargeted to the Go2 for 10 s: the heading-frame
speed, the trunk height shift and foot penetration left, the clamps, and the **contact pattern** from our
forward kinematics (a foot is in contact when its bottom is within 1.5 cm of the floor): correlations of
the contact signals of the diagonal pairs (FL-RR, FR-RL) and the lateral pairs (FL-RL, FR-RR). A trot has
diagonal pairs in phase (positive) and lateral pairs opposed; a pace the reverse. A profile with a leg
order, sign or offset wrong shows up here as a pattern that matches no gait. For AMP frames (61 numbers)
it also compares the clip's own toe positions with our forward kinematics of the profile's geometry,
and the clip's base velocity with finite differences of its positions.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np

from dynaflow.data.sources.clips import (
    AMP,
    AMP_WIDTH,
    feet_in_body,
    load_profile,
    read_clip,
    retarget,
)
from dynaflow.data.sources.gaits import heading_velocity
from dynaflow.evaluate.clips import foot_contacts, pair_correlations
from dynaflow.robots.go2 import LEGS


def contact_correlations(states: np.ndarray, threshold: float = 0.015) -> dict[str, list[float]]:
    contact = foot_contacts(states, threshold)
    return {**pair_correlations(contact), "duty_FL_FR_RL_RR": contact.mean(axis=0).round(3).tolist()}


def amp_checks(path: str, profile) -> dict | None:
    raw = json.loads(open(path).read())
    frames = np.asarray(raw["Frames"], np.float64)
    if frames.shape[1] != AMP_WIDTH:
        return None
    joints = profile.joints_to_go2(frames[:, AMP["joint_pos"]])
    order = [LEGS.index(leg) for leg in profile.legs]
    toes = feet_in_body(joints, profile.geometry)[:, order].reshape(len(frames), 12)
    err = np.abs(toes - frames[:, AMP["toe_pos"]]).reshape(-1, 4, 3).max(axis=(0, 1))
    clip = read_clip(path, profile)
    fd = np.gradient(clip.pos, clip.frame_duration, axis=0)
    return {
        "toe_fk_max_error_xyz_m": err.round(4).tolist(),
        "base_velocity_vs_finite_difference_mean_m_s": np.abs(clip.linvel - fd)[2:-2]
        .mean(0)
        .round(3)
        .tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--robot", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    profile = load_profile(args.robot)
    print(f"profile {profile.name} ({profile.source}); {platform.processor() or platform.machine()}")
    for path in args.clips:
        r = retarget(read_clip(path, profile), seconds=args.seconds)
        speed = heading_velocity(r.states, r.dt)
        cc = contact_correlations(r.states)
        row = {
            "clip": path.rsplit("/", 1)[-1],
            "vx_vy_yaw": speed.round(2).tolist(),
            "height_shift_cm": round(100 * r.info["height_offset_m"], 1),
            "penetration_max_cm": round(100 * r.info["foot_penetration_max_m"], 1),
            "clamped_steps": r.info["clamped_steps"],
            "diagonal": np.round(cc["diagonal"], 2).tolist(),
            "lateral": np.round(cc["lateral"], 2).tolist(),
            "duty": cc["duty_FL_FR_RL_RR"],
        }
        amp = amp_checks(path, profile) if path.endswith((".txt", ".json")) else None
        if amp:
            row.update(amp)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
