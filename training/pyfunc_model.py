"""The MLflow model code of every mmops version (MLflow's models-from-code).

``mlflow.pyfunc.log_model`` is given this file's path, not a pickled object: the logged model is
this source file plus the artifact directory, so loading it unpickles nothing. It is a separate
file because MLflow runs it on its own to build the model.
"""

from mlflow.models import set_model

from training.tracking import MmopsPyfunc

set_model(MmopsPyfunc())
