"""deeplab-public v1's caffe.proto, and the normalized schema (notation: ``schema._compile``).

DEEPLAB_V1 is BVLC's table minus what the Dec-2014 schema lacks (the V2 ``layer = 100`` and
everything only it uses, ParamSpec, BlobShape, DECONVOLUTION, loss_param, the N-d ``axis``
fields) plus DeepLab's own numbers where they clash: LayerType 39..56, LayerParameter fields
42..59 (but 57, the fork's EuclideanLoss type) and strict_dim 1003, ConvolutionParameter hole 17
/ hole_h 18 / hole_w 19.
Numbers from DeepLab v1's src/caffe/proto/caffe.proto (TheLegendAli/DeepLab-Context at 3e413ee,
the DeepLab authors' last commit); the clashes are listed in docs/caffe_formats.md.
"""

DEEPLAB_V1 = r"""
include bvlc
drop LayerParameter V1LayerParameter ParamSpec ParamSpec.DimCheckMode BlobShape LossParameter
drop LossParameter.NormalizationMode InputParameter CropParameter BatchNormParameter
drop ScaleParameter PReLUParameter PythonParameter FlattenParameter LRNParameter.Engine
drop FillerParameter.VarianceNorm PoolingParameter.RoundMode SolverParameter.SnapshotFormat
drop V1LayerParameter.LayerType V1LayerParameter.DimCheckMode
drop RecurrentParameter
# BVLC's messages of layer types newer than the fork (Dec 2014).
drop EmbedParameter ParameterParameter ReductionParameter ReductionParameter.ReductionOp
drop ReshapeParameter SPPParameter SPPParameter.PoolMethod SPPParameter.Engine TileParameter

message NetParameter = bvlc NetParameter - input_shape layer
  2 layers LayerParameter*

# Legacy 4-D blobs only (no shape, no double data).
message BlobProto = bvlc BlobProto - shape double_data double_diff

message DummyDataParameter = bvlc DummyDataParameter - shape
message TransformationParameter = bvlc TransformationParameter - force_color force_gray
message FillerParameter = bvlc FillerParameter - variance_norm
message PoolingParameter = bvlc PoolingParameter - round_mode
message InnerProductParameter = bvlc InnerProductParameter - axis transpose
message SoftmaxParameter = bvlc SoftmaxParameter - axis
message ConcatParameter = bvlc ConcatParameter - axis
message SliceParameter = bvlc SliceParameter - axis
message AccuracyParameter = bvlc AccuracyParameter - axis ignore_label
message ArgMaxParameter = bvlc ArgMaxParameter - axis
message LRNParameter = bvlc LRNParameter - engine
message DataParameter = bvlc DataParameter - force_encoded_color prefetch
message InfogainLossParameter = bvlc InfogainLossParameter - axis
message ContrastiveLossParameter = bvlc ContrastiveLossParameter - legacy_version

# pad / kernel_size / stride are single values here; hole is DeepLab's atrous rate.
message ConvolutionParameter = bvlc ConvolutionParameter - axis force_nd_im2col dilation
  3 pad uint32 =0
  4 kernel_size uint32
  6 stride uint32 =1
  17 hole uint32 =1
  18 hole_h uint32 =1
  19 hole_w uint32 =1

enum ImageDataParameter.LabelType NONE=0 IMAGE=1 PIXEL=2
message ImageDataParameter = bvlc ImageDataParameter
  13 has_label bool =true
  14 max_labels uint32 =1
  15 ignore_label int32 =255
  16 label_type LabelType =IMAGE

enum SegAccuracyParameter.AccuracyMetric PixelAccuracy=0 ClassAccuracy=1 PixelIOU=2
message SegAccuracyParameter
  1 metric AccuracyMetric =PixelAccuracy
  2 ignore_label int32*

message InterpParameter
  1 height int32 =0
  2 width int32 =0
  3 zoom_factor int32 =1
  4 shrink_factor int32 =1
  5 pad_beg int32 =0
  6 pad_end int32 =0

message SoftmaxLossParameter
  16 weight_source string
  2 ignore_label int32*

message PaddingParameter
  1 pad_beg int32 =0
  2 pad_end int32 =0

message MatWriteParameter
  1 prefix string
  2 source string =""
  3 strip int32 =0
  4 period int32 =1

message MatReadParameter
  1 prefix string
  2 source string =""
  3 strip int32 =0
  4 batch_size int32 =1

message DenseCRFParameter
  1 max_iter int32 =10
  2 pos_xy_std float*
  3 pos_w float*
  4 bi_xy_std float*
  5 bi_rgb_std float*
  6 bi_w float*

# The weakly / semi-supervised layers (Papandreou et al. 2015).  "required" fields are checked by
# the layers, as the C++ does when it reads them.
message UniqueLabelParameter
  1 max_labels int32
  2 ignore_label float*
  3 force_label float*

message BiasChannelParameter
  1 bg_bias float =1
  2 fg_bias float =2
  3 ignore_label int32*

message AdaptiveBiasChannelParameter
  1 num_iter int32 =1
  2 bg_portion float =0.2
  3 fg_portion float =0.2
  4 suppress_others bool =true
  5 margin_others float =1e-5

message DominantChannelParameter
  1 top_k int32 =1

message CensorLabelParameter
  1 ignore_label int32

message ChannelAggregatorParameter
  1 label_map_file string

message GainChannelParameter
  1 num_output_nz int32 =0
  2 drift float =0
  3 stdev float =0
  4 gain_filler FillerParameter
  5 norm_mean bool =true
  6 thresh float =1e-3

message IgnoreOverlayParameter
  1 ignore_label int32

message HistogramParameter
  1 num_labels int32
  2 ignore_label int32*

message OneHotParameter
  1 num_labels int32

enum LayerParameter.LayerType = bvlc V1LayerParameter.LayerType - DECONVOLUTION
  IMAGE_SEG_DATA=39 SEG_ACCURACY=40 INTERP=41 PADDING=42
  MAT_WRITE=43 MAT_READ=44 DENSE_CRF=45 DOMINANT_CHANNEL=46
  BIAS_CHANNEL=47 UNIQUE_LABEL=48 CENSOR_LABEL=49 ADAPTIVE_BIAS_CHANNEL=50
  CHANNEL_AGGREGATOR=51 IGNORE_OVERLAY=52 HISTOGRAM=53 RELATIVE_ERROR=54
  GAIN_CHANNEL=55 ONEHOT=56
enum LayerParameter.DimCheckMode STRICT=0 PERMISSIVE=1
# DeepLab v1's (V1-style) LayerParameter.  Field 57 (euclidean_loss_param, the fork's L2sqrt
# EuclideanLoss) is not tabled: our EuclideanLoss does not implement it, so it reads as unknown.
message LayerParameter = bvlc V1LayerParameter - loss_param
  42 seg_accuracy_param SegAccuracyParameter
  43 interp_param InterpParameter
  44 softmaxloss_param SoftmaxLossParameter
  45 padding_param PaddingParameter
  46 mat_write_param MatWriteParameter
  47 mat_read_param MatReadParameter
  48 dense_crf_param DenseCRFParameter
  49 dominant_channel_param DominantChannelParameter
  50 bias_channel_param BiasChannelParameter
  51 unique_label_param UniqueLabelParameter
  52 censor_label_param CensorLabelParameter
  53 adaptive_bias_channel_param AdaptiveBiasChannelParameter
  54 channel_aggregator_param ChannelAggregatorParameter
  55 ignore_overlay_param IgnoreOverlayParameter
  56 histogram_param HistogramParameter
  58 gain_channel_param GainChannelParameter
  59 onehot_param OneHotParameter
  1003 strict_dim bool =true

enum SolverParameter.SolverType SGD=0 NESTEROV=1 ADAGRAD=2
# Fields up to 34 only: no iter_size, clip_gradients, type, snapshot_format ...
message SolverParameter = bvlc SolverParameter - iter_size clip_gradients snapshot_format type
  - momentum2 rms_decay layer_wise_reduce weights
"""

# BVLC V2 plus DeepLab v1's layer parameters: what LayerSpec.message holds and what a V2 text
# file may use.  The numbers 10042.. are private (DeepLab v1 never had a V2 LayerParameter);
# they only have to stay clear of BVLC's V2 LayerParameter numbers.
NORMALIZED = r"""
include bvlc
message SegAccuracyParameter = deeplab_v1 SegAccuracyParameter
enum SegAccuracyParameter.AccuracyMetric = deeplab_v1 SegAccuracyParameter.AccuracyMetric
message InterpParameter = deeplab_v1 InterpParameter
message SoftmaxLossParameter = deeplab_v1 SoftmaxLossParameter
message PaddingParameter = deeplab_v1 PaddingParameter
message MatWriteParameter = deeplab_v1 MatWriteParameter
message MatReadParameter = deeplab_v1 MatReadParameter
message DenseCRFParameter = deeplab_v1 DenseCRFParameter
message UniqueLabelParameter = deeplab_v1 UniqueLabelParameter
message BiasChannelParameter = deeplab_v1 BiasChannelParameter
message AdaptiveBiasChannelParameter = deeplab_v1 AdaptiveBiasChannelParameter
message DominantChannelParameter = deeplab_v1 DominantChannelParameter
message CensorLabelParameter = deeplab_v1 CensorLabelParameter
message ChannelAggregatorParameter = deeplab_v1 ChannelAggregatorParameter
message GainChannelParameter = deeplab_v1 GainChannelParameter
message IgnoreOverlayParameter = deeplab_v1 IgnoreOverlayParameter
message HistogramParameter = deeplab_v1 HistogramParameter
message OneHotParameter = deeplab_v1 OneHotParameter
enum ImageDataParameter.LabelType = deeplab_v1 ImageDataParameter.LabelType
message ImageDataParameter = deeplab_v1 ImageDataParameter

# CRF-RNN's multi_stage_meanfield_param (44) comes with the BVLC table.
message LayerParameter = bvlc LayerParameter
  10042 seg_accuracy_param SegAccuracyParameter
  10043 interp_param InterpParameter
  10044 softmaxloss_param SoftmaxLossParameter
  10045 padding_param PaddingParameter
  10046 mat_write_param MatWriteParameter
  10047 mat_read_param MatReadParameter
  10048 dense_crf_param DenseCRFParameter
  10049 dominant_channel_param DominantChannelParameter
  10050 bias_channel_param BiasChannelParameter
  10051 unique_label_param UniqueLabelParameter
  10052 censor_label_param CensorLabelParameter
  10053 adaptive_bias_channel_param AdaptiveBiasChannelParameter
  10054 channel_aggregator_param ChannelAggregatorParameter
  10055 ignore_overlay_param IgnoreOverlayParameter
  10056 histogram_param HistogramParameter
  10058 gain_channel_param GainChannelParameter
  10059 onehot_param OneHotParameter
  1003 strict_dim bool =true
"""
