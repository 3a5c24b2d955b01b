import os

from mmengine.evaluator import DumpResults
from mmengine.fileio import dump


class AtomicDumpResults(DumpResults):
    """``DumpResults`` that writes through a temporary file, so an interrupted test never leaves half a pickle."""

    def compute_metrics(self, results: list) -> dict:
        directory = os.path.dirname(os.path.abspath(self.out_file_path))
        os.makedirs(directory, exist_ok=True)
        tmp = f'{self.out_file_path}.tmp{os.getpid()}.pkl'
        dump(results, tmp)
        os.replace(tmp, self.out_file_path)
        print(f'results have been saved to {self.out_file_path}')
        return {}
