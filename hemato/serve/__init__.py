"""hemato as a DICOM node (``python -m hemato.serve``, ``hemato-serve``).

A Storage SCP (pynetdicom) receives CT instances and writes each one to an on-disk queue
before it acknowledges the C-STORE (:mod:`hemato.serve.queue`); a worker thread runs
:func:`hemato.predict.predict` on every series that has been quiet for a while, with the model
loaded once, and sends the SEG and SR it wrote to a destination AE (:mod:`hemato.serve.scu`).
A series that predict refuses goes to ``failed/`` with its one-line reason; the node logs JSON
lines (:mod:`hemato.serve.node`).
"""
