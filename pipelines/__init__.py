"""The platform's Kubeflow pipelines: `training` and `monitoring` (kfp v2). Run them with
`grec pipeline run|compile|submit|schedule`."""
