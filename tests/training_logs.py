"""What a training run logged, read back from mmengine's ``vis_data/scalars.json``, for tests that compare runs."""
import json
import os


def logged_records(work_dir):
    """iteration -> the training record (loss, lr, ...) over every run in ``work_dir``: a resumed run logs into a new
    timestamp folder, and its record of an iteration replaces an earlier run's."""
    records = {}
    for stamp in sorted(os.listdir(work_dir)):
        path = os.path.join(work_dir, stamp, 'vis_data', 'scalars.json')
        if os.path.isfile(path):
            with open(path) as f:
                for record in map(json.loads, filter(str.strip, f)):
                    if 'loss' in record:
                        records[record['iter']] = record
    return records


def logged_losses(work_dir):
    """iteration -> loss over every run in ``work_dir``."""
    return {iteration: record['loss'] for iteration, record in logged_records(work_dir).items()}
